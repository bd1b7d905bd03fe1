"""The sender loop: delivers outbox rows through WeCom in order per person, within WeCom's limits, exactly once."""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.exceptions import WeChatClientException

from bot import card_state
from bot.clock import Clock
from bot.config import Config
from bot.db import transaction
from bot.models import OutboxMessage
from bot.wecom_client import WeComClient

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40014, 42001}
# Transient: WeCom is busy or rate-limiting us, or the network failed; worth another try later.
TRANSIENT_ERRORS = {-1, 45009, 45033, 45011}
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | retry | failed
    error: str | None = None
    msgid: str | None = None
    response_code: str | None = None
    retry_after: timedelta | None = None


class Sender:
    def __init__(self, config: Config, session_factory: sessionmaker[Session], client: WeComClient,
                 clock: Clock, *, parallelism: int = 8) -> None:
        self.config = config
        self.sessions = session_factory
        self.client = client
        self.clock = clock
        self.parallelism = parallelism
        # Long enough for one send with its token refresh; after a crash the row is retried after it.
        self.claim_duration = timedelta(seconds=2 * config.wecom.request_timeout + 5)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        # Counts of recorded outcomes, for `kpibot` health output and for tests that must wait for
        # an attempt to be recorded before moving the clock.
        self.outcomes: dict[str, int] = {"sent": 0, "retry": 0, "failed": 0}
        self._progress = threading.Condition()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
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
        batches = self._claim()
        if not batches:
            return 0
        if self._pool is None:
            results = [self._send_in_order(rows) for rows in batches.values()]
        else:
            results = list(self._pool.map(self._send_in_order, batches.values()))
        # One transaction records the whole pass: on SQLite every write queues for the one writer.
        self._record([outcome for outcomes, _ in results for outcome in outcomes],
                     [row_id for _, released in results for row_id in released])
        return sum(len(rows) for rows in batches.values())

    def _claim(self) -> dict[str, list[OutboxMessage]]:
        now = self.clock.now()
        limits = self.config.sender
        with transaction(self.sessions) as session:
            candidates = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))
                .order_by(OutboxMessage.id)
                .limit(limits.batch_size)
            ).all()
            if not candidates:
                return {}
            users = {row.touser for row in candidates}
            per_minute, per_hour = self._recent_counts(session, users, now)
            blocked: set[str] = set()
            claimed: dict[str, list[OutboxMessage]] = defaultdict(list)
            deferred: list[tuple[int, datetime]] = []
            for row in candidates:
                user = row.touser
                if user in blocked:
                    continue
                in_flight = row.status == "sending" and row.claimed_until and row.claimed_until > now
                if in_flight or row.next_attempt_at > now:
                    blocked.add(user)  # keep one person's messages in order: nothing overtakes this row
                    continue
                queued = len(claimed[user])
                if per_minute.get(user, 0) + queued >= limits.per_member_per_minute:
                    deferred.append((row.id, now + MINUTE / 2))
                    blocked.add(user)
                    continue
                if per_hour.get(user, 0) + queued >= limits.per_member_per_hour:
                    deferred.append((row.id, now + timedelta(minutes=5)))
                    blocked.add(user)
                    continue
                taken = session.execute(_unsynchronised(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id, OutboxMessage.status == row.status)
                    .values(status="sending", claimed_until=now + self.claim_duration)
                )).rowcount
                if taken == 1:
                    claimed[user].append(row)
                else:
                    blocked.add(user)  # another process got it; leave this person to that process
            for row_id, when in deferred:
                session.execute(_unsynchronised(update(OutboxMessage).where(OutboxMessage.id == row_id)
                                                .values(next_attempt_at=when)))
            return {user: rows for user, rows in claimed.items() if rows}

    @staticmethod
    def _recent_counts(session: Session, users: set[str], now: datetime) -> tuple[dict[str, int], dict[str, int]]:
        """How many messages each person got in the last minute and in the last hour, in one query."""
        in_last_minute = func.sum(case((OutboxMessage.sent_at >= now - MINUTE, 1), else_=0))
        rows = session.execute(
            select(OutboxMessage.touser, in_last_minute, func.count())
            .where(OutboxMessage.touser.in_(users), OutboxMessage.sent_at >= now - HOUR)
            .group_by(OutboxMessage.touser)
        ).all()
        return ({user: int(minute or 0) for user, minute, _ in rows}, {user: hour for user, _, hour in rows})

    def _send_in_order(self, rows: list[OutboxMessage]) -> tuple[list[tuple[OutboxMessage, Outcome]], list[int]]:
        """Send one person's rows in order; stop at the first that does not go out.

        Returns the outcomes, and the rows handed back unsent so they keep their place in the queue."""
        outcomes: list[tuple[OutboxMessage, Outcome]] = []
        for index, row in enumerate(rows):
            outcome = self.deliver(row)
            outcomes.append((row, outcome))
            if outcome.status != "sent":
                return outcomes, [later.id for later in rows[index + 1:]]
        return outcomes, []

    def deliver(self, row: OutboxMessage) -> Outcome:
        if row.msgtype == card_state.CARD_UPDATE:
            return self._update_card(row)
        payload: dict[str, Any] = {
            "touser": row.touser,
            "msgtype": row.msgtype,
            "agentid": self.config.wecom.agent_id,
            row.msgtype: row.payload,
            # If we crash after WeCom accepted the message but before we recorded it, the resend
            # is recognised by WeCom as a duplicate and not shown twice.
            "enable_duplicate_check": 1,
            "duplicate_check_interval": self.config.wecom.duplicate_check_interval,
        }
        refreshed = False
        while True:
            token = None
            try:
                token = self.client.access_token
                result = self.client.post("message/send", data=payload, params={"access_token": token})
            except WeChatClientException as error:
                if error.errcode in TOKEN_ERRORS and not refreshed:
                    self.client.forget_token(token)
                    refreshed = True
                    continue
                return self._classify(error)
            except requests.RequestException as error:
                return Outcome("retry", error=f"network: {type(error).__name__}")
            response_code = result.get("response_code")
            invalid = {u.lower() for u in str(result.get("invaliduser", "")).split("|") if u}
            if row.touser.lower() in invalid:
                return Outcome("failed", error="invaliduser: 不在应用可见范围内")
            return Outcome("sent", msgid=str(result.get("msgid", "")) or None,
                           response_code=str(response_code) if response_code else None)

    def _update_card(self, row: OutboxMessage) -> Outcome:
        """A finished card: its buttons become what happened (message/update_template_card, WeCom doc 94888)."""
        code = row.payload.get("response_code") or None
        if code is None:
            with self.sessions() as session:
                card = card_state.sent_card(session, row.payload["task_id"])
            if card.status in ("pending", "sending"):
                # The card went out in this same pass and its response_code is not recorded yet: try again
                # as soon as it is (the next pass), keeping this person's later messages behind it.
                return Outcome("retry", error="card not sent yet", retry_after=timedelta(0))
            if card.response_code is None or card.sent_at is None:
                return Outcome("failed", error=f"card never sent ({card.status or 'unknown'}): nothing to update")
            if self.clock.now() - card.sent_at >= card_state.RESPONSE_CODE_VALIDITY:
                return Outcome("failed", error="response_code expired (72 h): the card keeps its buttons")
            code = card.response_code
        body = {"userids": [row.touser], "agentid": self.config.wecom.agent_id, "response_code": code,
                "button": {"replace_name": row.payload["replace_name"]}}
        refreshed = False
        while True:
            token = None
            try:
                token = self.client.access_token
                result = self.client.post("message/update_template_card", data=body, params={"access_token": token})
            except WeChatClientException as error:
                if error.errcode in TOKEN_ERRORS and not refreshed:
                    self.client.forget_token(token)
                    refreshed = True
                    continue
                if error.errcode == 40058 and row.attempts > 0:
                    # The code is spent: an earlier attempt that we could not record did the update.
                    return Outcome("sent", error=f"{error.errcode} on a resend: taken as done")
                return self._classify(error)
            except requests.RequestException as error:
                return Outcome("retry", error=f"network: {type(error).__name__}")
            invalid = {str(u).lower() for u in result.get("invaliduser") or ()}
            if row.touser.lower() in invalid:
                return Outcome("failed", error="invaliduser: not a holder of this card")
            return Outcome("sent")

    @staticmethod
    def _classify(error: WeChatClientException) -> Outcome:
        code = error.errcode
        if code is None:
            status = getattr(getattr(error, "response", None), "status_code", None)
            if status is None or status >= 500 or status == 429:
                return Outcome("retry", error=f"HTTP {status}" if status else f"network: {error.errmsg}")
            return Outcome("failed", error=f"HTTP {status}")
        if code == 45009:
            return Outcome("retry", error=f"{code} {error.errmsg}", retry_after=MINUTE)
        if code in TRANSIENT_ERRORS or code in TOKEN_ERRORS:
            return Outcome("retry", error=f"{code} {error.errmsg}")
        return Outcome("failed", error=f"{code} {error.errmsg}")

    def _record(self, outcomes: list[tuple[OutboxMessage, Outcome]], released: list[int]) -> None:
        now = self.clock.now()
        recorded: list[str] = []
        with transaction(self.sessions) as session:
            for row, outcome in outcomes:
                values: dict[str, Any] = {"attempts": row.attempts + 1, "claimed_until": None,
                                          "last_error": outcome.error}
                if outcome.status == "sent":
                    values.update(status="sent", sent_at=now, wecom_msgid=outcome.msgid,
                                  response_code=outcome.response_code)
                elif outcome.status == "retry" and row.attempts + 1 < self.config.sender.max_attempts:
                    backoff = outcome.retry_after if outcome.retry_after is not None else min(timedelta(seconds=2 ** row.attempts), timedelta(minutes=5))
                    values.update(status="pending", next_attempt_at=now + backoff)
                else:
                    values.update(status="failed")
                    log.warning("message %s to %s failed for good: %s", row.idempotency_key, row.touser,
                                outcome.error)
                session.execute(_unsynchronised(update(OutboxMessage).where(OutboxMessage.id == row.id)
                                                .values(**values)))
                recorded.append("retry" if values["status"] == "pending" else values["status"])
            if released:
                session.execute(_unsynchronised(update(OutboxMessage).where(OutboxMessage.id.in_(released))
                                                .values(status="pending", claimed_until=None)))
        with self._progress:
            for status in recorded:
                self.outcomes[status] += 1
            self._progress.notify_all()


def _unsynchronised(statement: Any) -> Any:
    # These rows are never held as objects in the session, so SQLAlchemy need not evaluate the
    # criteria against its identity map (which costs more than the UPDATE itself).
    return statement.execution_options(synchronize_session=False)
