"""`kpibot db backup` and `kpibot db restore`: SQLite's online backup; the dump tools' commands for servers."""
from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from bot.cli.support import CliError, config_from_args, head_revision, help_text, subcommand_group
from bot.templates import render

# Exit code when kpibot backed nothing up itself and printed the server tool's command instead:
# non-zero, so a cron job that expects a file does not take the advice for a backup.
EXIT_USE_SERVER_TOOL = 3


def _fail(code: str, exit_code: int = 2, **params: object) -> CliError:
    return CliError(render("ops/db_backup_error.txt.j2", code=code, **params), exit_code)


def _server_name(url: URL) -> str | None:
    backend = url.get_backend_name()
    return {"postgresql": "PostgreSQL", "mysql": "MariaDB", "mariadb": "MariaDB"}.get(backend)


def _sqlite_path(url: URL) -> Path:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        raise _fail("memory")
    return Path(database)


def _connection_options(url: URL, server: str) -> str:
    """The connection as the dump tool's options; never the password (that goes in the environment)."""
    if server == "PostgreSQL":
        return f"--host {url.host or '127.0.0.1'} --port {url.port or 5432} --username {url.username or 'postgres'} " \
               f"--dbname {url.database}"
    return f"--host {url.host or '127.0.0.1'} --port {url.port or 3306} --user {url.username or 'root'} {url.database}"


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy a live SQLite database page by page with SQLite's online backup API; returns the file's size.

    Safe while kpibot runs: the copy is one consistent snapshot, and writers are only paused for
    the moment each batch of pages is copied."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst, pages=1024)
    return target.stat().st_size


def _revision_of(path: Path) -> str | None:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _check_backup(path: Path) -> str | None:
    """The backup's schema revision, after checking it is an intact kpibot database."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            ok = connection.execute("PRAGMA integrity_check").fetchone()
            if ok is None or ok[0] != "ok":
                raise _fail("not_backup", path=str(path), reason=str(ok[0] if ok else "integrity_check"))
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise _fail("not_backup", path=str(path), reason=str(error)) from None
    if not {"alembic_version", "inbox", "outbox"} <= tables:
        raise _fail("not_backup", path=str(path), reason="alembic_version/inbox/outbox")
    return _revision_of(path)


def cmd_db_backup(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    url = make_url(config.database.url.reveal())
    target = Path(args.file)
    server = _server_name(url)
    if server is not None:
        print(render("ops/db_backup_server.txt.j2", server=server, path=str(target),
                     connection=_connection_options(url, server),
                     target=_connection_options(url, server).rsplit(" ", 1)[-1]))
        return EXIT_USE_SERVER_TOOL
    source = _sqlite_path(url)
    if target.exists():
        raise _fail("exists", path=str(target))
    try:
        size = backup_sqlite(source, target)
    except sqlite3.Error as error:
        target.unlink(missing_ok=True)
        raise _fail("failed", reason=f"{type(error).__name__}: {error}", exit_code=1) from None
    print(render("ops/db_backup.txt.j2", path=str(target), size=size, revision=_revision_of(target)))
    return 0


def cmd_db_restore(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    url = make_url(config.database.url.reveal())
    backup = Path(args.file)
    server = _server_name(url)
    if server is not None:
        raise _fail("restore_server", server=server)
    if not backup.is_file():
        raise _fail("missing", path=str(backup))
    revision = _check_backup(backup)
    target = _sqlite_path(url)
    # The same online backup API, the other way: the live file is replaced page by page in one
    # transaction, so a reader sees either the old database or the restored one.
    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    print(render("ops/db_restore.txt.j2", path=str(backup), revision=revision, head=head_revision()))
    return 0


def add_parsers(subparsers: Any) -> None:
    db = subcommand_group(subparsers, "db", help_text("ops", "db"))  # `kpibot db` is ops' group (db upgrade)
    backup = db.add_parser("backup", help=help_text("backup", "db.backup"))
    backup.add_argument("file", metavar="FILE")
    backup.set_defaults(func=cmd_db_backup)
    restore = db.add_parser("restore", help=help_text("backup", "db.restore"))
    restore.add_argument("file", metavar="FILE")
    restore.set_defaults(func=cmd_db_restore)
