"""The `kpibot` command line: one parser, each command family registering its subcommands."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from jinja2 import TemplateNotFound

from bot.cli import backup as cli_backup, calendar as cli_calendar, data as cli_data, doctor as cli_doctor, ops as cli_ops, results as cli_results, sandbox as cli_sandbox, scoring as cli_scoring
from bot.cli.support import CliError, help_text
from bot.templates import TEMPLATE_ROOT

# Each module adds its subcommands with add_parsers(subparsers); each subcommand sets
# `func(args) -> int` as its handler. Listed explicitly so a newcomer sees every command here.
COMMAND_MODULES: list = [cli_ops, cli_backup, cli_scoring, cli_sandbox, cli_data, cli_results, cli_calendar,
                         cli_doctor]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kpibot", description=help_text("main", "kpibot"))
    parser.add_argument("--config", default=None, help=help_text("main", "--config"))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # its help texts are templates too
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        return func(args)
    except CliError as error:
        print(f"kpibot: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except TemplateNotFound as error:
        # Its traceback would hide the real message; say what is missing and where it was looked for.
        print(f"kpibot: message template {error.name} not found under {TEMPLATE_ROOT}: the installation is "
              f"incomplete (reinstall kpibot)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover - `python -m bot.cli.main`, as the crash tests start it
    sys.exit(main())
