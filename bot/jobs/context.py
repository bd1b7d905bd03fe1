"""JobContext: what a job receives from the runner, plain parts and no application, and its chunked commits."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from bot.chat.dispatcher import Dispatcher
from bot.clock import Clock
from bot.config import Config
from bot.storage.db import CHUNK_SIZE, in_chunks
from bot.wecom.client import WeComClient

Item = TypeVar("Item")


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
        """bot.storage.db.in_chunks on this job's session factory: how every long job writes."""
        in_chunks(self.sessions, items, work, size=size, pausepoint=pausepoint, progress=progress)
