"""The sender loop: passes that claim what is due within WeCom's limits, deliver it in order and record it."""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from bot import pausepoints
from bot.clock import Clock
from bot.config import MAX_DUPLICATE_WINDOW, Config
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage, SendingPause
from bot.wecom.client import WeComClient
from bot.wecom.sender.delivery import Delivery, Outcome
from bot.wecom.sender.limits import company_room, count_calls, member_budgets
from bot.wecom.sender.pause import current_pause, lift_pause, probe_now, start_pause, take_probe
from bot.wecom.sender.statements import CLAIM_ROW, RECORD_ROW, UNSENT, unsynchronised

log = logging.getLogger(__name__)

MAX_HEAD_PAGES = 20  # pages of batch_size members looked at in one pass


@dataclass(frozen=True)
class Claim:
    """What one pass may send: each member's rows in order, and whether it is the probe of a pause."""

    batches: dict[str, list[OutboxMessage]]
    probe_of: SendingPause | None = None


class Sender:
    """Sends in passes: in a thread of its own once started, or one pass at a time through send_due()."""

    def __init__(self, config: Config, session_factory: sessionmaker[Session], client: WeComClient,
                 clock: Clock, *, parallelism: int = 8) -> None:
        self.config = config
        self.sessions = session_factory
        self.clock = clock
        self.delivery = Delivery(config, session_factory, client, clock)
        self.parallelism = parallelism
        # Long enough for one send with its token refresh; after a crash the row is retried after it.
        self.claim_duration = timedelta(seconds=2 * config.wecom.request_timeout + 5)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        # Counts of recorded outcomes, for `kpibot` health output and for tests that must wait for
        # an attempt to be recorded before moving the clock. A held (paused) row counts as a retry.
        self.outcomes: dict[str, int] = {"sent": 0, "retry": 0, "failed": 0}
        self._progress = threading.Condition()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        with transaction(self.sessions) as session:
            probe_now(session, self.clock.now())
        self._pool = ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="sender")
        self._thread = threading.Thread(target=self._run, name="sender-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        if self._pool:
            self._pool.shutdown(wait=True)

    def wake(self) -> None:
        self._wake.set()

    def wait_for_outcomes(self, attempts: int, timeout: float = 5.0) -> dict[str, int]:
        """Block until at least `attempts` send outcomes (sent, retry or failed) have been recorded."""
        with self._progress:
            if not self._progress.wait_for(lambda: sum(self.outcomes.values()) >= attempts, timeout=timeout):
                raise TimeoutError(f"only {self.outcomes} recorded after {timeout}s")
            return dict(self.outcomes)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.send_due()
            except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                log.exception("sender pass failed")
                handled = 0
            if handled == 0:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                # Let a burst of replies gather for a moment: one pass for many rows costs far less
                # than a pass per row, and a few milliseconds are invisible to a person.
                self._stop.wait(timeout=0.005)

    # -- one pass ----------------------------------------------------------------------------
    def send_due(self) -> int:
        """Claim what may be sent now, send it, record the outcomes; returns how many rows were handled."""
        claim = self._claim()
        if not claim.batches:
            return 0
        pausepoints.reached("sender.claimed")
        paused = threading.Event()  # once WeCom says "misconfigured", the rest of the pass holds back
        work = [(rows, paused) for rows in claim.batches.values()]
        if self._pool is None:
            results = [self._send_in_order(*item) for item in work]
        else:
            results = list(self._pool.map(lambda item: self._send_in_order(*item), work))
        # One transaction records the whole pass: on SQLite every write queues for the one writer.
        self._record([outcome for outcomes, _ in results for outcome in outcomes],
                     [row_id for _, released in results for row_id in released], claim.probe_of)
        return sum(len(rows) for rows in claim.batches.values())

    def _claim(self) -> Claim:
        """Claim rows that are due now: each member's first unsent row and those after it, within limits.

        Only a member's first unsent row can be due (order per member), so the query starts from those
        heads: a member with a long backlog or a backoff takes no room from anyone else."""
        now = self.clock.now()
        with transaction(self.sessions) as session:
            paused = current_pause(session)
            if paused is not None and (paused.next_attempt_at > now
                                       or not take_probe(session, self.config, paused, now)):
                return Claim({})
            probe_of = paused
            room = 1 if probe_of else min(self.config.sender.batch_size,
                                          company_room(session, self.config.sender, now))
            if room <= 0:
                return Claim({})
            users, budgets = self._due_members(session, room, now)
            if not users:
                return Claim({})
            queues = self._queued_rows(session, users, max(budgets[user] for user in users))
            chosen = self._share(users, queues, budgets, room, now)
            claimed = self._take(session, chosen, now)
            if claimed:
                count_calls(session, self.config, sum(len(rows) for rows in claimed.values()), now)
            return Claim(claimed, probe_of)

    def _due_members(self, session: Session, room: int, now: datetime) -> tuple[list[str], dict[str, int]]:
        """Members whose first unsent row is due and who are under their limits, oldest first.

        Heads are read a page at a time, so members held back by their limits (a fan-out of many rows
        each) cannot fill the page and keep later members from being looked at."""
        limit = self.config.sender.batch_size
        heads = select(func.min(OutboxMessage.id)).where(OutboxMessage.status.in_(UNSENT)) \
            .group_by(OutboxMessage.touser)
        users: list[str] = []
        budgets: dict[str, int] = {}
        after = 0
        for _ in range(MAX_HEAD_PAGES):
            page = session.execute(
                select(OutboxMessage.touser, OutboxMessage.id)
                .where(OutboxMessage.id.in_(heads), OutboxMessage.id > after, OutboxMessage.next_attempt_at <= now,
                       (OutboxMessage.status == "pending") | (OutboxMessage.claimed_until.is_(None))
                       | (OutboxMessage.claimed_until <= now))
                .order_by(OutboxMessage.id).limit(limit)
            ).all()
            if not page:
                break
            found = member_budgets(session, self.config.sender, [user for user, _ in page], now)
            users += [user for user, _ in page if found.get(user, 0) > 0]
            budgets.update(found)
            after = page[-1][1]
            if len(users) >= room or len(page) < limit:
                break
        return users, budgets

    @staticmethod
    def _queued_rows(session: Session, users: list[str], most: int) -> dict[str, list[OutboxMessage]]:
        """Each member's first `most` unsent rows, oldest first, in one query."""
        position = func.row_number().over(partition_by=OutboxMessage.touser, order_by=OutboxMessage.id)
        numbered = (select(OutboxMessage.id, position.label("position"))
                    .where(OutboxMessage.touser.in_(users), OutboxMessage.status.in_(UNSENT)).subquery())
        rows = session.scalars(
            select(OutboxMessage).join(numbered, numbered.c.id == OutboxMessage.id)
            .where(numbered.c.position <= most).order_by(OutboxMessage.id)).all()
        queues: dict[str, list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            queues[row.touser].append(row)
        return queues

    @staticmethod
    def _share(users: list[str], queues: dict[str, list[OutboxMessage]], budgets: dict[str, int], room: int,
               now: datetime) -> dict[str, list[OutboxMessage]]:
        """Hand out the pass's room one row per member per round, oldest member first, in each member's order."""
        runs: dict[str, list[OutboxMessage]] = {}
        for user in users:
            run = []
            for row in queues.get(user, [])[:budgets[user]]:
                in_flight = row.status == "sending" and row.claimed_until is not None and row.claimed_until > now
                if in_flight or row.next_attempt_at > now:
                    break  # nothing overtakes a row that is not due
                run.append(row)
            if run:
                runs[user] = run
        chosen: dict[str, list[OutboxMessage]] = defaultdict(list)
        depth = 0
        while room > 0 and runs:
            for user in list(runs):
                if room <= 0:
                    break
                if depth < len(runs[user]):
                    chosen[user].append(runs[user][depth])
                    room -= 1
                else:
                    del runs[user]
            depth += 1
        return chosen

    def _take(self, session: Session, chosen: dict[str, list[OutboxMessage]],
              now: datetime) -> dict[str, list[OutboxMessage]]:
        span = MAX_DUPLICATE_WINDOW - self.config.wecom.duplicate_check_interval + 1
        per_send = timedelta(seconds=2 * self.config.wecom.request_timeout)
        last_seq = self._last_dup_seqs(session, [user for user, rows in chosen.items()
                                                 if any(row.dup_seq is None for row in rows)], now)
        claimed: dict[str, list[OutboxMessage]] = {}
        for user, rows in chosen.items():
            next_seq = (last_seq[user] + 1) % span if user in last_seq else 0
            taken_rows: list[OutboxMessage] = []
            for index, row in enumerate(rows):
                seq = row.dup_seq
                if seq is None:
                    seq = next_seq
                # a row claimed before keeps its number, and the rows after it follow on from it
                next_seq = (seq + 1) % span
                taken = session.connection().execute(CLAIM_ROW, {
                    "b_id": row.id, "b_status": row.status, "b_attempts": row.attempts, "b_seq": seq,
                    # a member's rows go out one after another: later ones wait longer
                    "b_until": now + per_send * (index + 1) + timedelta(seconds=5)}).rowcount
                if taken != 1:
                    break  # another process got it; leave this person to that process
                # what was written, without making the session flush it again before every query
                set_committed_value(row, "dup_seq", seq)
                taken_rows.append(row)
            if taken_rows:
                claimed[user] = taken_rows
        return claimed

    @staticmethod
    def _last_dup_seqs(session: Session, users: list[str], now: datetime) -> dict[str, int]:
        """Each member's sequence number of their latest message sent in WeCom's longest window (4 h).

        Only those can make WeCom drop a new request; older ones are out of every window. A member with
        an unsent row before these would not be due, so their latest claimed row is among the sent."""
        if not users:
            return {}
        window = timedelta(seconds=MAX_DUPLICATE_WINDOW)
        latest = (select(func.max(OutboxMessage.id))
                  .where(OutboxMessage.touser.in_(users), OutboxMessage.sent_at >= now - window,
                         OutboxMessage.dup_seq.is_not(None))
                  .group_by(OutboxMessage.touser))
        return {user: int(seq) for user, seq in session.execute(
            select(OutboxMessage.touser, OutboxMessage.dup_seq).where(OutboxMessage.id.in_(latest)))}

    # -- sending -------------------------------------------------------------------------------
    def _send_in_order(self, rows: list[OutboxMessage], paused: threading.Event
                       ) -> tuple[list[tuple[OutboxMessage, Outcome]], list[int]]:
        """Send one person's rows in order; stop at the first that does not go out.

        Returns the outcomes, and the rows handed back unsent so they keep their place in the queue."""
        outcomes: list[tuple[OutboxMessage, Outcome]] = []
        for index, row in enumerate(rows):
            if paused.is_set():
                return outcomes, [later.id for later in rows[index:]]
            outcome = self.delivery.deliver(row)
            pausepoints.reached("sender.answered")
            outcomes.append((row, outcome))
            if outcome.status == "paused":
                paused.set()
            if outcome.status != "sent":
                return outcomes, [later.id for later in rows[index + 1:]]
        return outcomes, []

    # -- recording -----------------------------------------------------------------------------
    def _record(self, outcomes: list[tuple[OutboxMessage, Outcome]], released: list[int],
                probe_of: SendingPause | None = None) -> None:
        now = self.clock.now()
        recorded: list[str] = []
        pause_reason: str | None = None
        answered = False
        updates: list[dict[str, Any]] = []
        for row, outcome in outcomes:
            values: dict[str, Any] = {"b_id": row.id, "b_error": outcome.error, "b_attempts": row.attempts + 1,
                                      "b_sent_at": None, "b_msgid": None, "b_response_code": None, "b_next": None}
            if outcome.status == "paused":
                # Not the message's fault: it keeps its place and its attempts, and is never failed.
                pause_reason = pause_reason or outcome.error
                values.update(b_status="pending", b_attempts=row.attempts)
                updates.append(values)
                recorded.append("retry")
                continue
            answered = answered or outcome.answered
            if outcome.status == "sent":
                values.update(b_status="sent", b_sent_at=now, b_msgid=outcome.msgid,
                              b_response_code=outcome.response_code)
            elif outcome.status == "retry" and row.attempts + 1 < self.config.sender.max_attempts:
                backoff = (outcome.retry_after if outcome.retry_after is not None  # 0: at the next pass
                           else min(timedelta(seconds=2 ** row.attempts), timedelta(minutes=5)))
                values.update(b_status="pending", b_next=now + backoff)
            else:
                values.update(b_status="failed")
                log.warning("message %s to %s failed for good: %s", row.idempotency_key, row.touser,
                            outcome.error)
            updates.append(values)
            recorded.append("retry" if values["b_status"] == "pending" else values["b_status"])
        with transaction(self.sessions) as session:
            if updates:  # one statement for the whole pass (executemany): per-row ORM updates cost more than sends
                session.connection().execute(RECORD_ROW, updates)
            if released:
                session.execute(unsynchronised(update(OutboxMessage).where(OutboxMessage.id.in_(released))
                                               .values(status="pending", claimed_until=None)))
            if pause_reason is not None:
                start_pause(session, self.config, pause_reason, now)
            elif probe_of is not None and answered and lift_pause(session, self.config, probe_of, now):
                self._wake.set()
        with self._progress:
            for status in recorded:
                self.outcomes[status] += 1
            self._progress.notify_all()
