"""Small portable SQL helpers the three supported databases disagree on."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_duplicates(session: Session | Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, silently skipping any whose unique key exists; returns how many were inserted.

    Used where a duplicate is expected and harmless (a retried callback, a re-enqueued message):
    the database's own unique index decides, so two processes racing cannot both win.
    """
    if not rows:
        return 0
    dialect = (session.dialect if isinstance(session, Connection) else session.get_bind().dialect).name
    if dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing()
    elif dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        statement = mysql.insert(table).prefix_with("IGNORE")
    else:  # pragma: no cover - only the three supported backends reach here
        raise RuntimeError(f"unsupported database dialect {dialect}")
    inserted = 0
    if dialect in ("mysql", "mariadb"):
        for row in rows:
            inserted += max(session.execute(statement, row).rowcount or 0, 0)
        return inserted
    # psycopg reports rowcount -1 here, so count the rows the database says it inserted instead.
    key = list(table.primary_key.columns)[0]
    for row in rows:
        inserted += len(session.execute(statement.returning(key), row).all())
    return inserted
