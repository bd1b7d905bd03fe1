"""Conversation and command handlers, one module per family; ROUTERS lists them all, in dispatch order."""
from __future__ import annotations

from bot.chat.routing import Router
from handlers import help as help_handlers
from handlers import leave, reports, self_review, weekly_report
from handlers import feedback360, okr
from handlers import results, scoring

ROUTERS: list[Router] = [
    help_handlers.router,
    weekly_report.router,
    reports.router,
    self_review.router,
    leave.router,
    okr.router,
    feedback360.router,
    scoring.router,
    results.router,
]
