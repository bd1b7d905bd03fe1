"""The sender loop: delivers outbox rows through WeCom in order per person, within WeCom's limits, exactly once."""
from __future__ import annotations

# How "exactly once" works with WeCom's duplicate check (wecom.md §2, §9).
#
# With enable_duplicate_check=1 WeCom silently drops (errcode 0) a request whose JSON equals one it
# delivered to the same person within duplicate_check_interval. Every attempt of every row keeps the
# check on, and each row's request differs from every other row's in one field a person never sees:
# duplicate_check_interval itself, set from the row's per-member sequence number (`dup_seq`, fixed at
# its first claim) to a value between the configured shortest window and WeCom's 4 h. One member gets
# at most 4,000 messages in 4 h and there are at least 4,001 values, so two rows of one member never
# share a request within any window, while a resend of the same row (after a timeout or a crash
# between WeCom's answer and our record) repeats its request byte for byte and is dropped by WeCom.
# A documented field is used rather than an extra, unknown one because WeCom may parse the request
# into its own structure before comparing, which would discard an unknown field but not this one.
# Template cards also carry a task_id per row; a resend that meets 42014 (task_id used) arrived.

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import Integer, String, Text, bindparam, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from wechatpy.exceptions import WeChatClientException

from bot.wecom import card_state, outbox
from bot.clock import Clock
from bot.config import MAX_DUPLICATE_WINDOW, Config
from bot.storage.db import transaction
from bot.storage.models import ApiCallCount, OutboxMessage, SendingPause, UTCDateTime
from bot.storage.sqlutil import insert_ignoring_duplicates
from bot.templates import render
from bot.wecom.client import CONFIG_ERRORS, WeComClient

log = logging.getLogger(__name__)

# 41001 (no token at all) can only be our bug; like a rejected token it is worth one fresh token.
TOKEN_ERRORS = {40014, 42001, 41001}
# Transient: WeCom is busy or rate-limiting us, or the network failed; worth another try later.
TRANSIENT_ERRORS = {-1, 45009, 45033, 45011}
TASK_ID_USED = 42014
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
SEND_API = "message/send"
DAY_COUNTER = "message/send:day"  # person-times per WeCom day, for the app's daily volume
BUCKET = timedelta(seconds=10)
CLOCK_SKEW = timedelta(minutes=1)  # how far ahead another process's clock may be and still count
MAX_HEAD_PAGES = 20  # pages of batch_size members looked at in one pass
WECOM_DAY_ZONE = ZoneInfo("Asia/Shanghai")  # WeCom's "natural day" is China's
UNSENT = ("pending", "sending")


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | retry | failed | paused (WeCom says the app is misconfigured: hold everything)
    error: str | None = None
    msgid: str | None = None
    response_code: str | None = None
    retry_after: timedelta | None = None
    answered: bool = True  # False when WeCom's answer never came (network, proxy error page)


@dataclass(frozen=True)
class Claim:
    """What one pass may send: each member's rows in order, and whether it is the probe of a pause."""

    batches: dict[str, list[OutboxMessage]]
    probe_of: SendingPause | None = None


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
        # an attempt to be recorded before moving the clock. A held (paused) row counts as a retry.
        self.outcomes: dict[str, int] = {"sent": 0, "retry": 0, "failed": 0}
        self._progress = threading.Condition()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        # An operator who fixed the app restarts the bot and expects it to try at once.
        with transaction(self.sessions) as session:
            session.execute(update(SendingPause).where(SendingPause.next_attempt_at > self.clock.now())
                            .values(next_attempt_at=self.clock.now()))
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
        limits = self.config.sender
        with transaction(self.sessions) as session:
            pause = session.get(SendingPause, SEND_API)
            probe_of: SendingPause | None = None
            if pause is not None:
                if pause.next_attempt_at > now or not self._take_probe(session, pause, now):
                    return Claim({})
                probe_of = pause
            room = 1 if probe_of else min(limits.batch_size, self._company_room(session, now))
            if room <= 0:
                return Claim({})
            users, budgets = self._due_members(session, room, now)
            if not users:
                return Claim({})
            queues = self._queued_rows(session, users, max(budgets[user] for user in users))
            chosen = self._share(users, queues, budgets, room, now)
            claimed = self._take(session, chosen, now)
            if claimed:
                self._count_calls(session, sum(len(rows) for rows in claimed.values()), now)
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
            found = self._member_budgets(session, [user for user, _ in page], now)
            users += [user for user, _ in page if found.get(user, 0) > 0]
            budgets.update(found)
            after = page[-1][1]
            if len(users) >= room or len(page) < limit:
                break
        return users, budgets

    def _take_probe(self, session: Session, pause: SendingPause, now: datetime) -> bool:
        """Become the one process that tries again, and set when the next try would be (growing)."""
        retry = min(pause.retry_seconds * 2, self.config.sender.pause_retry_max_seconds)
        won = session.execute(_unsynchronised(
            update(SendingPause).where(SendingPause.scope == SEND_API,
                                       SendingPause.next_attempt_at == pause.next_attempt_at)
            .values(next_attempt_at=now + timedelta(seconds=retry), retry_seconds=retry)
        )).rowcount
        return won == 1

    def _member_budgets(self, session: Session, users: list[str], now: datetime) -> dict[str, int]:
        """How many more messages each member may get now: the per-member limits (with their margin)
        less what they got in the last minute and hour and what any process is sending them."""
        limits = self.config.sender
        in_last_minute = func.sum(_case_when(OutboxMessage.sent_at >= now - MINUTE))
        # A send stamped well in the future comes from a process whose clock is wrong: it must not hold a
        # member back for as long as that clock is ahead.
        sent = {user: (int(minute or 0), int(hour)) for user, minute, hour in session.execute(
            select(OutboxMessage.touser, in_last_minute, func.count())
            .where(OutboxMessage.touser.in_(users), OutboxMessage.sent_at >= now - HOUR,
                   OutboxMessage.sent_at <= now + CLOCK_SKEW)
            .group_by(OutboxMessage.touser))}
        in_flight = {user: int(count) for user, count in session.execute(
            select(OutboxMessage.touser, func.count())
            .where(OutboxMessage.status == "sending", OutboxMessage.touser.in_(users),
                   OutboxMessage.claimed_until > now)
            .group_by(OutboxMessage.touser))}
        budgets = {}
        for user in users:
            minute, hour = sent.get(user, (0, 0))
            busy = in_flight.get(user, 0)
            budgets[user] = min(limits.per_member_per_minute - minute, limits.per_member_per_hour - hour) - busy
        return budgets

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
                taken = session.connection().execute(_CLAIM_ROW, {
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

    # -- company-wide ceilings -----------------------------------------------------------------
    def _company_room(self, session: Session, now: datetime) -> int:
        """Calls to message/send the whole company may still make now, and the day's volume left."""
        limits = self.config.sender
        in_last_minute = func.sum(_case_when(ApiCallCount.bucket_start > now - MINUTE - BUCKET, ApiCallCount.calls))
        minute, hour = session.execute(
            select(in_last_minute, func.sum(ApiCallCount.calls))
            .where(ApiCallCount.api == SEND_API, ApiCallCount.bucket_start > now - HOUR - BUCKET,
                   ApiCallCount.bucket_start <= now + CLOCK_SKEW)).one()
        today = session.scalar(select(ApiCallCount.calls).where(ApiCallCount.api == DAY_COUNTER,
                                                               ApiCallCount.bucket_start == _wecom_day(now)))
        return min(limits.company_calls_per_minute - int(minute or 0), limits.company_calls_per_hour - int(hour or 0),
                   self._daily_volume() - int(today or 0))

    def _daily_volume(self) -> int:
        return self.config.sender.account_limit * 200

    def _count_calls(self, session: Session, calls: int, now: datetime) -> None:
        bucket = _bucket(now)
        day = _wecom_day(now)
        fresh = insert_ignoring_duplicates(session, ApiCallCount.__table__, [
            {"api": SEND_API, "bucket_start": bucket, "calls": 0}, {"api": DAY_COUNTER, "bucket_start": day, "calls": 0}])
        for api, start in ((SEND_API, bucket), (DAY_COUNTER, day)):
            session.execute(_unsynchronised(update(ApiCallCount)
                                            .where(ApiCallCount.api == api, ApiCallCount.bucket_start == start)
                                            .values(calls=ApiCallCount.calls + calls)))
        if fresh:  # a new bucket began: forget the ones no ceiling looks at any more
            session.execute(delete(ApiCallCount).where(ApiCallCount.api == SEND_API,
                                                       ApiCallCount.bucket_start < now - 2 * HOUR))
            session.execute(delete(ApiCallCount).where(ApiCallCount.api == DAY_COUNTER,
                                                       ApiCallCount.bucket_start < day - timedelta(days=7)))
        today = session.scalar(select(ApiCallCount.calls).where(ApiCallCount.api == DAY_COUNTER,
                                                               ApiCallCount.bucket_start == day)) or 0
        threshold = self._daily_volume() * self.config.sender.daily_warning_percent // 100
        if today - calls < threshold <= today:
            self._warn_daily_volume(session, today, now)

    def _warn_daily_volume(self, session: Session, today: int, now: datetime) -> None:
        day = now.astimezone(WECOM_DAY_ZONE).date()
        text = render("ops/daily_volume_warning.txt.j2", self.config.bot.locale, sent=today,
                      volume=self._daily_volume(), account_limit=self.config.sender.account_limit, day=day)
        queued = self._tell_admins(session, f"sender:daily-volume:{day.isoformat()}", text, now)
        if queued:
            log.warning("message/send today: %d of the app's %d person-times a day (account limit %d x 200)",
                        today, self._daily_volume(), self.config.sender.account_limit)

    def _tell_admins(self, session: Session, key: str, text: str, now: datetime) -> int:
        return sum(outbox.enqueue(session, f"{key}:{admin}", outbox.Outgoing.text(admin, text), now)
                   for admin in self.config.org.admins)

    # -- sending -------------------------------------------------------------------------------
    def _send_in_order(self, rows: list[OutboxMessage], paused: threading.Event
                       ) -> tuple[list[tuple[OutboxMessage, Outcome]], list[int]]:
        """Send one person's rows in order; stop at the first that does not go out.

        Returns the outcomes, and the rows handed back unsent so they keep their place in the queue."""
        outcomes: list[tuple[OutboxMessage, Outcome]] = []
        for index, row in enumerate(rows):
            if paused.is_set():
                return outcomes, [later.id for later in rows[index:]]
            outcome = self.deliver(row)
            outcomes.append((row, outcome))
            if outcome.status == "paused":
                paused.set()
            if outcome.status != "sent":
                return outcomes, [later.id for later in rows[index + 1:]]
        return outcomes, []

    def request_body(self, row: OutboxMessage) -> dict[str, Any]:
        """The exact request for a row: the same on every attempt, different from every other row's."""
        shortest = self.config.wecom.duplicate_check_interval
        span = MAX_DUPLICATE_WINDOW - shortest + 1
        return {
            "touser": row.touser,
            "msgtype": row.msgtype,
            "agentid": self.config.wecom.agent_id,
            row.msgtype: row.payload,
            "enable_duplicate_check": 1,
            "duplicate_check_interval": shortest + (row.dup_seq or 0) % span,
        }

    def deliver(self, row: OutboxMessage) -> Outcome:
        if row.msgtype == card_state.CARD_UPDATE:
            return self._update_card(row)
        payload = self.request_body(row)
        # A row claimed before (a recorded attempt, or a claim that ran out after a crash) may have arrived.
        resend = row.attempts > 0 or row.status == "sending"
        refreshed = False
        while True:
            token = None
            try:
                token = self.client.access_token
                result = self.client.post(SEND_API, data=payload, params={"access_token": token})
            except WeChatClientException as error:
                if error.errcode in TOKEN_ERRORS and not refreshed:
                    self.client.forget_token(token)
                    refreshed = True
                    continue
                if error.errcode == TASK_ID_USED and resend:
                    return Outcome("sent", error=f"{error.errcode}: 首次发送已送达 (task_id 已使用)")
                return self._classify(error)
            except requests.RequestException as error:
                return Outcome("retry", error=f"network: {type(error).__name__}", answered=False)
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
                return Outcome("retry", error=f"network: {type(error).__name__}", answered=False)
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
                return Outcome("retry", error=f"HTTP {status}" if status else f"network: {error.errmsg}",
                               answered=False)
            return Outcome("failed", error=f"HTTP {status}", answered=False)
        if code in CONFIG_ERRORS:
            return Outcome("paused", error=f"{code} {error.errmsg}")
        if code == 45009:
            return Outcome("retry", error=f"{code} {error.errmsg}", retry_after=MINUTE)
        if code in TRANSIENT_ERRORS or code in TOKEN_ERRORS:
            return Outcome("retry", error=f"{code} {error.errmsg}")
        return Outcome("failed", error=f"{code} {error.errmsg}")

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
                session.connection().execute(_RECORD_ROW, updates)
            if released:
                session.execute(_unsynchronised(update(OutboxMessage).where(OutboxMessage.id.in_(released))
                                                .values(status="pending", claimed_until=None)))
            if pause_reason is not None:
                self._pause(session, pause_reason, now)
            elif probe_of is not None and answered:
                self._resume(session, probe_of, now)
        with self._progress:
            for status in recorded:
                self.outcomes[status] += 1
            self._progress.notify_all()

    def _pause(self, session: Session, reason: str, now: datetime) -> None:
        first_retry = self.config.sender.pause_retry_seconds
        started = insert_ignoring_duplicates(session, SendingPause.__table__, [{
            "scope": SEND_API, "reason": reason, "since": now,
            "next_attempt_at": now + timedelta(seconds=first_retry), "retry_seconds": first_retry}])
        if started:
            log.error("sending paused: WeCom answered %s; every message stays queued and sending is tried again "
                      "in %d s, then less and less often (see `kpibot outbox`)", reason, first_retry)
        else:  # still paused; keep the reason current (a fixed secret may reveal an untrusted IP next)
            session.execute(update(SendingPause).where(SendingPause.scope == SEND_API).values(reason=reason))

    def _resume(self, session: Session, pause: SendingPause, now: datetime) -> None:
        lifted = session.execute(delete(SendingPause).where(SendingPause.scope == SEND_API,
                                                            SendingPause.since == pause.since)).rowcount
        if lifted != 1:
            return
        held = session.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.status.in_(UNSENT))) or 0
        zone = self.config.schedule.zone
        text = render("ops/sending_resumed.txt.j2", self.config.bot.locale, reason=pause.reason,
                      since=pause.since.astimezone(zone), resumed=now.astimezone(zone), held=held)
        self._tell_admins(session, f"sender:resumed:{pause.since.strftime('%Y%m%dT%H%M%S%f')}", text, now)
        log.warning("sending resumed after a pause since %s (%s); %d messages queued", pause.since.isoformat(),
                    pause.reason, held)
        self._wake.set()


_OUTBOX = OutboxMessage.__table__
# Claim one row if nobody changed it since it was read; its sequence number is set on its first claim only.
_CLAIM_ROW = (update(_OUTBOX)
              .where(_OUTBOX.c.id == bindparam("b_id"), _OUTBOX.c.status == bindparam("b_status"),
                     _OUTBOX.c.attempts == bindparam("b_attempts"))
              .values(status="sending", claimed_until=bindparam("b_until", type_=UTCDateTime()),
                      dup_seq=func.coalesce(_OUTBOX.c.dup_seq, bindparam("b_seq", type_=Integer()))))
# Record one attempt's outcome; the columns an outcome does not set keep their value.
_RECORD_ROW = (update(_OUTBOX)
               .where(_OUTBOX.c.id == bindparam("b_id"))
               .values(status=bindparam("b_status"), attempts=bindparam("b_attempts"), claimed_until=None,
                       last_error=bindparam("b_error", type_=Text()),
                       sent_at=func.coalesce(bindparam("b_sent_at", type_=UTCDateTime()), _OUTBOX.c.sent_at),
                       wecom_msgid=func.coalesce(bindparam("b_msgid", type_=String()), _OUTBOX.c.wecom_msgid),
                       response_code=func.coalesce(bindparam("b_response_code", type_=String()),
                                                   _OUTBOX.c.response_code),
                       next_attempt_at=func.coalesce(bindparam("b_next", type_=UTCDateTime()),
                                                     _OUTBOX.c.next_attempt_at)))


def current_pause(session: Session) -> SendingPause | None:
    """The pause in force, if WeCom said the app is misconfigured and sending has not worked since."""
    return session.get(SendingPause, SEND_API)


def _bucket(now: datetime) -> datetime:
    return now.replace(second=now.second - now.second % 10, microsecond=0)


def _wecom_day(now: datetime) -> datetime:
    local = now.astimezone(WECOM_DAY_ZONE)
    return datetime.combine(local.date(), time(0), WECOM_DAY_ZONE)


def _case_when(condition: Any, value: Any = 1) -> Any:
    from sqlalchemy import case
    return case((condition, value), else_=0)


def _unsynchronised(statement: Any) -> Any:
    # These rows are never held as objects in the session, so SQLAlchemy need not evaluate the
    # criteria against its identity map (which costs more than the UPDATE itself).
    return statement.execution_options(synchronize_session=False)
