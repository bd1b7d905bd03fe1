"""Conversation and command handlers, one module per family; ROUTERS lists them all, in dispatch order."""
from __future__ import annotations

from bot.routing import Router
from handlers import help as help_handlers

ROUTERS: list[Router] = [
    help_handlers.router,
]
