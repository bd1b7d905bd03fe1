"""JobContext: what a job receives from the runner, plain parts and no application, and its chunked commits."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from bot import pausepoints
from bot.chat.dispatcher import Dispatcher
from bot.clock import Clock
from bot.config import Config
from bot.storage.db import transaction
from bot.wecom.client import WeComClient

Item = TypeVar("Item")

# How many rows a long job writes per transaction: between two chunks the database's writer lock is free for the
# callback (on SQLite one writer at a time), however long the whole job takes.
CHUNK_SIZE = 200


@dataclass(frozen=True)
class JobContext:
    """One run of a job: its own session (committed by the runner when the job returns), the moment and period
    it runs for, and the parts of the bot a job may use."""

    session: Session
    at: datetime  # local time, in the configured zone
    period: str
    config: Config
    clock: Clock
    client: WeComClient
    sessions: sessionmaker[Session]  # for work that must commit apart from `session` (see in_chunks)
    dispatcher: Dispatcher  # the conversations' declarations, for closing those that timed out

    def in_chunks(self, items: Sequence[Item], work: Callable[[Session, Sequence[Item]], None], *,
                  size: int = CHUNK_SIZE, pausepoint: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> None:
        """Do `work` on `items` `size` at a time, each chunk committed in a transaction of its own: how every long
        job writes, so that nothing waits behind it. `progress(done, total)` hears of each committed chunk."""
        total = len(items)
        for start in range(0, total, size):
            with transaction(self.sessions) as session:
                work(session, items[start:start + size])
            if pausepoint is not None:
                pausepoints.reached(pausepoint)
            if progress is not None:
                progress(min(start + size, total), total)
