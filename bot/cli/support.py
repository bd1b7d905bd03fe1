"""What the command modules share: CliError, the config and database a command starts from, help texts."""
from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import Engine

from bot.appraisal import workcalendar
from bot.config import Config, ConfigError, default_config_path, load_config
from bot.storage.db import current_revision, make_engine, migrations_dir
from bot.templates import render


class CliError(Exception):
    """A problem to report as one clear line (`kpibot: <message>`) with a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def cli_error(code: str, exit_code: int = 2, **params: Any) -> CliError:
    """A CliError whose line is a branch of templates/<locale>/cli/error.txt.j2."""
    return CliError(render("cli/error.txt.j2", code=code, params=params), exit_code)


def help_text(family: str, key: str, **variables: Any) -> str:
    """argparse's help for a command or an option: templates/<locale>/cli/help/<family>.txt.j2 holds one text a key."""
    return render(f"cli/help/{family}.txt.j2", key=key, **variables)


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of `--config` (or the default path), with the admin's calendar file installed for every date."""
    try:
        config = load_config(args.config or default_config_path())
    except ConfigError as error:
        raise cli_error("config.invalid", error=str(error)) from None
    workcalendar.use_calendar_file(config.calendar)
    return config


def open_engine(config: Config) -> Engine:
    return make_engine(config.database.url.reveal())


def head_revision() -> str | None:
    """The newest schema revision this installation ships (Alembic's head)."""
    # Alembic's script loader is imported here, not at the top: it adds about 100 ms to every `kpibot` command,
    # `--help` included, and only the commands that touch the database need it.
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(migrations_dir()))
    head: str | None = ScriptDirectory.from_config(alembic).get_current_head()
    return head


def first_line(error: BaseException, limit: int = 200) -> str:
    """An exception as `Type: first line of its message`, cut at `limit` characters (one line of a CLI error)."""
    return f"{type(error).__name__}: {str(error).splitlines()[0][:limit] if str(error) else ''}"


def require_current_schema(engine: Engine) -> None:
    """Stop the command with one line unless the database is reachable and at the head revision."""
    head = head_revision()
    try:
        current = current_revision(engine)
    except Exception as error:  # noqa: BLE001 - cannot even connect: say so in one line
        raise cli_error("database.unreachable", reason=first_line(error)) from None
    if current != head:
        raise cli_error("database.outdated", current=current, head=head)


def subcommand_group(subparsers: Any, name: str, help: str) -> Any:
    """The subcommands of `kpibot <name>`, created by the first module that registers the family and
    shared with the others (e.g. `data import` and `data sync-wecom` live in different modules)."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
    for action in parser._actions:  # argparse keeps no public handle on an existing parser's subparsers
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)
