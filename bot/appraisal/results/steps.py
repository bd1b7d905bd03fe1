"""What the steps of the close and the publication share: writes a chunk per short transaction, and sending."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from bot.appraisal.results.compute import Progress
from bot.config import Config
from bot.storage.db import in_chunks as storage_in_chunks
from bot.wecom import outbox

CHUNK = 200  # members per write transaction: short enough for the callback to get the SQLite writer between
Plan = TypeVar("Plan")


def in_chunks(sessions: sessionmaker[Session], items: Sequence[str], plan: Plan,
              *steps: Callable[[Session, Plan, list[str]], None], stage: str, progress: Progress | None) -> None:
    """Every chunk of `items` through each step in turn, one short transaction per chunk (bot.storage.db.in_chunks):
    the callback gets the writer between them, and a re-run finds the rest written and sends nothing twice."""
    def work(session: Session, chunk: Sequence[str]) -> None:
        for step in steps:
            step(session, plan, list(chunk))

    report = None if progress is None else (lambda done, total: progress(stage, done, total))
    storage_in_chunks(sessions, list(items), work, size=CHUNK, pausepoint=f"results.{stage}", progress=report)


def send(session: Session, config: Config, key: str, userid: str, template: str, now: datetime,
         **variables: Any) -> None:
    """Queue one person's message under its idempotency key (bot.wecom.outbox.send picks text or markdown)."""
    outbox.send(session, config, key, userid, template, now, **variables)
