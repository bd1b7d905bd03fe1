"""Helpers shared by the command modules (kept apart from bot/cli/main.py, which imports those modules)."""
from __future__ import annotations

import argparse
from typing import Any


def subcommand_group(subparsers: Any, name: str, help_text: str) -> Any:
    """The subcommands of `kpibot <name>`, created by the first module that registers the family and
    shared with the others (e.g. `data import` and `data sync-wecom` live in different modules)."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help_text)
    for action in parser._actions:  # argparse keeps no public handle on an existing parser's subparsers
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)
