"""The inbox: acknowledged callbacks stored under their dedupe key, then processed one at a time per member."""
from __future__ import annotations

import logging
import queue
import threading
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import pausepoints
from bot.wecom import outbox
from bot.clock import Clock
from bot.config import Config
from bot.storage.db import transaction
from bot.storage.models import InboxMessage
from bot.storage.sqlutil import insert_ignoring_duplicates
from bot.wecom.updates import Update, update_from_fields

log = logging.getLogger(__name__)

# What answers one update, inside the transaction that claimed it: (session, update, reply key prefix). The
# composition root hands in the dispatcher's handle(); the inbox knows nothing of the chat above it.
Handle = Callable[[Session, Update, str], None]


class _HandlerFailed(Exception):
    def __init__(self, row_id: int, payload: dict[str, Any]) -> None:
        super().__init__(row_id)
        self.row_id = row_id
        self.payload = payload


def store_update(session: Session | Connection, update: Update, clock: Clock) -> bool:
    """Record an acknowledged delivery; False when WeCom is retrying one we already have."""
    row = {
        "dedupe_key": update.dedupe_key(),
        "from_user": update.from_user,
        "msg_type": update.kind,
        "payload": update.to_payload(),
        "status": "pending",
        "received_at": clock.now(),
    }
    return insert_ignoring_duplicates(session, InboxMessage.__table__, [row]) == 1


# A callback may carry a timestamp up to an hour ahead (bot/wecom/callback.py); a day's margin covers it.
PRUNE_MARGIN = timedelta(days=1)


def prune_dedupe_keys(session: Session, now: datetime, keep_days: int) -> int:
    """Delete handled inbox rows (and so their dedupe keys) received more than keep_days (+1) ago.

    Safe because the callback refuses any signed message older than keep_days: a replay of a pruned
    message is refused there instead of being handled twice. Pending rows are never deleted."""
    cutoff = now - timedelta(days=keep_days) - PRUNE_MARGIN
    result = session.execute(delete(InboxMessage).where(InboxMessage.status.in_(("done", "failed")),
                                                        InboxMessage.received_at < cutoff))
    return int(result.rowcount or 0)


class InboxProcessor:
    """Worker threads that drain the inbox: a member's messages in the order they came, members in parallel.

    A member is always handled by the same worker (hash of the userid), which keeps one member's
    messages in order inside this process; across processes the claim below does it.
    """

    def __init__(self, config: Config, session_factory: sessionmaker[Session], handle: Handle, clock: Clock,
                 after_commit: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.sessions = session_factory
        self.handle = handle
        self.clock = clock
        self.after_commit = after_commit
        self.worker_count = config.bot.inbox_workers
        self._queues: list[queue.Queue[str | None]] = [queue.Queue() for _ in range(self.worker_count)]
        self._pending: list[set[str]] = [set() for _ in range(self.worker_count)]
        self._locks = [threading.Lock() for _ in range(self.worker_count)]
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        # How many messages this process has finished, so callers can wait for work to be done.
        self.processed = 0
        self._progress = threading.Condition()

    def wait_for_processed(self, count: int, timeout: float = 5.0) -> int:
        """Block until this process has finished at least `count` messages (handled or failed)."""
        with self._progress:
            if not self._progress.wait_for(lambda: self.processed >= count, timeout=timeout):
                raise TimeoutError(f"only {self.processed} messages processed after {timeout}s")
            return self.processed

    def start(self) -> None:
        for index in range(self.worker_count):
            thread = threading.Thread(target=self._work, args=(index,), name=f"inbox-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        sweeper = threading.Thread(target=self._sweep_loop, name="inbox-sweep", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)

    def stop(self) -> None:
        self._stop.set()
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def notify(self, userid: str) -> None:
        index = zlib.crc32(userid.encode("utf-8")) % self.worker_count
        with self._locks[index]:
            if userid in self._pending[index]:
                return
            self._pending[index].add(userid)
        self._queues[index].put(userid)

    def resume_pending(self, older_than: timedelta = timedelta(0)) -> int:
        """Queue every member with unprocessed messages (after a restart, or another process's crash)."""
        cutoff = self.clock.now() - older_than
        with transaction(self.sessions) as session:
            users = session.scalars(select(InboxMessage.from_user).where(
                InboxMessage.status == "pending", InboxMessage.received_at <= cutoff).distinct()).all()
        for userid in users:
            self.notify(userid)
        return len(users)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(timeout=5):
            try:
                self.resume_pending(older_than=timedelta(seconds=10))
            except Exception:  # noqa: BLE001 - keep sweeping through a database hiccup
                log.exception("inbox sweep failed")

    def _work(self, index: int) -> None:
        while True:
            userid = self._queues[index].get()
            if userid is None:
                return
            with self._locks[index]:
                self._pending[index].discard(userid)
            try:
                while not self._stop.is_set() and self.process_next(userid):
                    pass
            except Exception:  # noqa: BLE001 - the sweep retries later
                log.exception("inbox worker failed for %s", userid)

    def process_next(self, userid: str) -> bool:
        """Process the member's oldest pending message; False when there is none left."""
        try:
            found = self._process_oldest(userid)
        except _HandlerFailed as failure:
            log.error("handling inbox message %s from %s failed: %r", failure.row_id, userid, failure.payload,
                      exc_info=failure.__cause__)
            self._fail(failure.row_id, userid, failure.__cause__ or failure)
            found = True
        if found:
            with self._progress:
                self.processed += 1
                self._progress.notify_all()
            self.after_commit()
        return found

    def _process_oldest(self, userid: str) -> bool:
        with transaction(self.sessions) as session:
            row = session.scalars(
                select(InboxMessage)
                .where(InboxMessage.from_user == userid, InboxMessage.status == "pending")
                .order_by(InboxMessage.id).limit(1)
            ).first()
            if row is None:
                return False
            row_id, payload = row.id, row.payload
            # The claim is the first write of the transaction: a second process trying the same row
            # waits on its lock and then finds it done, so the handler's effects happen once.
            claimed = session.execute(
                update(InboxMessage).where(InboxMessage.id == row_id, InboxMessage.status == "pending")
                .values(status="done", processed_at=self.clock.now())
                .execution_options(synchronize_session=False)  # the row is not in the session's identity map
            ).rowcount
            if claimed != 1:
                return True  # another process took it; look again for the next one
            pausepoints.reached("inbox.claimed")
            try:
                self.handle(session, update_from_fields(payload), f"in:{row_id}")
                session.flush()
                pausepoints.reached("inbox.handled")
            except Exception as error:  # noqa: BLE001 - a handler bug must not stop the member's queue
                raise _HandlerFailed(row_id, payload) from error
        return True

    def _fail(self, row_id: int, userid: str, error: Exception) -> None:
        with transaction(self.sessions) as session:
            failed = session.execute(
                update(InboxMessage).where(InboxMessage.id == row_id, InboxMessage.status == "pending")
                .values(status="failed", processed_at=self.clock.now(), error=f"{type(error).__name__}: {error}"[:2000])
            ).rowcount
            if failed == 1:
                outbox.send(session, self.config, f"in:{row_id}:apology", userid, "apology.txt.j2", self.clock.now())
