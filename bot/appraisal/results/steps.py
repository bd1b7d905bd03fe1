"""What the steps of the close and the publication share: writes a chunk per short transaction, and sending."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from bot import pausepoints
from bot.appraisal.results.compute import Progress, chunks
from bot.config import Config
from bot.storage.db import transaction
from bot.wecom import outbox

CHUNK = 200  # members per write transaction: short enough for the callback to get the SQLite writer between
Plan = TypeVar("Plan")


def in_chunks(sessions: sessionmaker[Session], items: Sequence[str], plan: Plan,
              *steps: Callable[[Session, Plan, list[str]], None], stage: str, progress: Progress | None) -> None:
    """Every chunk of `items` through each step in turn, in one short transaction per chunk: between them the
    database's writer lock is free for the callback (on SQLite one writer at a time), however long the job takes.
    A crash loses at most the chunk under way; a re-run finds the rest written and sends nothing twice."""
    done = 0
    for chunk in chunks(list(items), CHUNK):
        with transaction(sessions) as session:
            for step in steps:
                step(session, plan, chunk)
        pausepoints.reached(f"results.{stage}")
        done += len(chunk)
        if progress:
            progress(stage, done, len(items))


def send(session: Session, config: Config, key: str, userid: str, template: str, now: datetime,
         **variables: Any) -> None:
    """Queue one person's message under its idempotency key (bot.wecom.outbox.send picks text or markdown)."""
    outbox.send(session, config, key, userid, template, now, **variables)
