"""The WeCom customer-contact sync: per-member daily behaviour figures, group figures by owner and customer counts, stored."""
from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatClientException

from bot.wecom import outbox
from bot.config import Config
from bot.storage.db import transaction
from bot.storage.models import Department, Member, WeComBehaviorDay, WeComCustomerCount, WeComGroupDay, WeComStatsGap
from bot.appraisal.numbers import NumberError, wecom_count, wecom_decimal
from bot.wecom.outbox import Outgoing
from bot.templates import render

log = logging.getLogger(__name__)
HUNDRED = Decimal(100)  # reply_percentage is in percent points

# WeCom's statistics are whole days in China Standard Time, whatever zone the bot is configured for (wecom.md §5).
WECOM_ZONE = ZoneInfo("Asia/Shanghai")
MAX_SPAN_DAYS = 30
HORIZON_DAYS = 180
OWNERS_PER_CALL = 100
GROUP_PAGE = 1000

BEHAVIOR_PATH = "externalcontact/get_user_behavior_data"
GROUP_PATH = "externalcontact/groupchat/statistic"
CUSTOMERS_PATH = "externalcontact/list"

NOT_PERMITTED = 48002
TOKEN_ERRORS = {40014, 42001}
RATE_LIMITED = {45009}  # the frequency limit holds for a minute or an hour: stop tonight's run
CONCURRENCY_LIMITED = 45033  # "lower your concurrency": back off, go on one call at a time
# Waits before each retry of a call WeCom answered 45033 once the run is serial; then the run stops.
CONCURRENCY_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)
SYSTEM_BUSY = -1
NO_CUSTOMERS = 84061  # externalcontact/list: the member has no external contacts
NO_CONTACT_PERMISSION = 84074  # the member is outside 客户联系's 使用范围: skipped, noted for the data-quality check
# The member is unknown to WeCom or outside the app's visibility: skip them, the others still count.
MEMBER_ERRORS = {60111, 60011, 40003, 84014, NOT_PERMITTED, NO_CONTACT_PERMISSION}
# A run that meets this many failing calls in a row is not going to get better tonight.
MAX_CONSECUTIVE_FAILURES = 20


class StatsNotPermitted(Exception):
    """48002: the app is not among 客户联系 → 可调用应用 (or the member outside its visibility). Retrying is useless."""

    def __init__(self, path: str, errmsg: str) -> None:
        super().__init__(f"{NOT_PERMITTED} {errmsg} ({path})")
        self.path = path
        self.errmsg = errmsg


class StatsStopped(Exception):
    """The run gave up: WeCom's frequency limit, or the API keeps failing. The next run re-pulls what is missing."""


class SyncWindowError(ValueError):
    """Days WeCom will not give: in the future, today, more than 180 days back, or first after last."""

    def __init__(self, reason: str, first: date, last: date, earliest: date, latest: date) -> None:
        super().__init__(reason)
        self.reason = reason
        self.first, self.last, self.earliest, self.latest = first, last, earliest, latest


@dataclass(frozen=True)
class SyncReport:
    first: date
    last: date
    members: int
    behavior_rows: int
    group_rows: int
    customer_snapshots: int
    calls: int
    skipped: tuple[str, ...] = ()  # members WeCom does not know or would not give
    failed: tuple[str, ...] = ()  # members whose call failed for another reason
    stopped: str | None = None  # why the run stopped early, if it did
    no_permission: tuple[str, ...] = ()  # skipped members without customer-contact permission (84074)
    not_pulled: tuple[str, ...] = ()  # members a stopped run did not reach (the next run pulls them)
    serial: bool = False  # WeCom asked for less concurrency (45033) and the run went on one call at a time


def wecom_today(now: datetime) -> date:
    return now.astimezone(WECOM_ZONE).date()


def sync_window(today: date) -> tuple[date, date]:
    """The first and last day WeCom gives statistics for: the last 180 days, up to yesterday (today is not final)."""
    return today - timedelta(days=HORIZON_DAYS - 1), today - timedelta(days=1)


def check_window(first: date, last: date, today: date) -> None:
    earliest, latest = sync_window(today)
    if first > last:
        raise SyncWindowError("reversed", first, last, earliest, latest)
    if last > latest:
        raise SyncWindowError("too_late", first, last, earliest, latest)
    if first < earliest:
        raise SyncWindowError("too_early", first, last, earliest, latest)


def spans(first: date, last: date, days: int = MAX_SPAN_DAYS) -> list[tuple[date, date]]:
    """first..last cut into pieces of at most `days` days (WeCom's limit per call)."""
    pieces = []
    start = first
    while start <= last:
        end = min(last, start + timedelta(days=days - 1))
        pieces.append((start, end))
        start = end + timedelta(days=1)
    return pieces


def members_to_sync(session: Session, config: Config) -> list[str]:
    """Active members, limited to the configured departments' subtrees when [wecom_stats] departments is set."""
    members = list(session.scalars(select(Member).where(Member.active.is_(True)).order_by(Member.userid)))
    roots = set(config.wecom_stats.departments)
    if not roots:
        return [member.userid for member in members]
    children: dict[int | None, list[int]] = {}
    for department in session.scalars(select(Department).where(Department.active.is_(True))):
        children.setdefault(department.parent_id, []).append(department.id)
    wanted: set[int] = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in wanted:
            continue
        wanted.add(current)
        stack.extend(children.get(current, []))
    return [m.userid for m in members if wanted.intersection(m.department_ids or ())]


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time(0), WECOM_ZONE).timestamp())


def _day_of(stat_time: Any) -> date:
    return datetime.fromtimestamp(int(stat_time), WECOM_ZONE).date()


def _decimal(value: Any, high: Decimal | None = None) -> Decimal | None:
    return wecom_decimal(value, high=high)


class _TokenRejected(Exception):
    """A worker thread met 40014/42001; only the thread that started the run refreshes the token."""


class _Deferred(Exception):
    """A worker thread met 45033: the run goes serial and the thread that started it pulls this member again."""


class StatsApi:
    """The three customer-contact calls with bounded retries: a token error refetches once, "system busy" is
    tried once more, 48002 and the frequency limit stop the run at once (never a retry loop). 45033 makes the
    run serial: worker threads hand their member back, the starting thread retries after a growing wait.

    Worker threads never touch the database: they use the token the starting thread fetched, and a rejected
    token sends their member back to that thread (on SQLite another connection would wait on the run's lock)."""

    def __init__(self, client: Any, sleep: Callable[[float], None] = _time.sleep) -> None:
        self.client = client
        self.sleep = sleep  # WeCom's own clock sets the pace of a backoff, so this is real time
        self.serial = False
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        self._token: str | None = None
        self.calls = 0
        self._failures_in_a_row = 0

    def on_starting_thread(self) -> bool:
        return threading.get_ident() == self._owner

    def _current_token(self) -> str:
        if self._token is None:
            if not self.on_starting_thread():
                raise _TokenRejected()
            self._token = self.client.access_token
        return self._token  # type: ignore[return-value]

    def renew_token(self) -> None:
        """Forget the token WeCom rejected and fetch another (on the thread that started the run)."""
        stale, self._token = self._token, None
        self.client.forget_token(stale)
        self._current_token()

    def _call(self, method: str, path: str, params: dict[str, Any] | None = None,
              data: dict[str, Any] | None = None) -> dict[str, Any]:
        refreshed = busy_retried = False
        backoffs = iter(CONCURRENCY_BACKOFF)
        send = getattr(self.client, method)
        while True:
            token = self._current_token()
            with self._lock:
                self.calls += 1
            try:
                query = {**(params or {}), "access_token": token}
                result = send(path, params=query, data=data) if data is not None else send(path, params=query)
            except WeChatClientException as error:
                if error.errcode == NOT_PERMITTED:
                    raise StatsNotPermitted(path, str(error.errmsg)) from None
                if error.errcode in RATE_LIMITED:
                    raise StatsStopped(f"{error.errcode} {error.errmsg}") from None
                if error.errcode == CONCURRENCY_LIMITED:
                    self.serial = True
                    if not self.on_starting_thread():
                        raise _Deferred() from None
                    wait_for = next(backoffs, None)
                    if wait_for is None:
                        raise StatsStopped(f"{error.errcode} {error.errmsg}") from None
                    log.info("WeCom asked for less concurrency (45033): waiting %ss, then one call at a time", wait_for)
                    self.sleep(wait_for)
                    continue
                if error.errcode in TOKEN_ERRORS and not refreshed:
                    if not self.on_starting_thread():
                        raise _TokenRejected() from None
                    self.renew_token()
                    refreshed = True
                    continue
                if error.errcode == SYSTEM_BUSY and not busy_retried:
                    busy_retried = True
                    continue
                if error.errcode not in MEMBER_ERRORS and error.errcode != NO_CUSTOMERS:
                    self._failed()
                raise
            except requests.RequestException as error:
                self._failed()
                raise WeChatClientException(errcode=None, errmsg=f"network: {type(error).__name__}") from None
            with self._lock:
                self._failures_in_a_row = 0
            return result

    def _failed(self) -> None:
        with self._lock:
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                raise StatsStopped(f"{self._failures_in_a_row} calls failed in a row")

    def behavior(self, userid: str, first: date, last: date) -> list[dict[str, Any]]:
        """One member's days, one call per 30 days (several userids in one call would come back summed)."""
        rows: list[dict[str, Any]] = []
        for start, end in spans(first, last):
            result = self._call("post", BEHAVIOR_PATH, data={
                "userid": [userid], "start_time": _day_start(start), "end_time": _day_start(end)})
            rows.extend(result.get("behavior_data") or [])
        return rows

    def groups(self, owners: Sequence[str], day: date) -> dict[str, dict[str, Any]]:
        """One day's group figures for up to 100 owners, page by page."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            result = self._call("post", GROUP_PATH, data={
                "day_begin_time": _day_start(day), "day_end_time": _day_start(day),
                "owner_filter": {"userid_list": list(owners)}, "offset": offset, "limit": GROUP_PAGE})
            items = result.get("items") or []
            for item in items:
                found[item["owner"]] = item.get("data") or {}
            next_offset = int(result.get("next_offset") or 0)
            if not items or next_offset >= int(result.get("total") or 0) or next_offset <= offset:
                return found
            offset = next_offset

    def customers(self, userid: str) -> int:
        try:
            result = self._call("get", CUSTOMERS_PATH, params={"userid": userid})
        except WeChatClientException as error:
            if error.errcode == NO_CUSTOMERS:
                return 0
            raise
        return len(result.get("external_userid") or [])


@dataclass
class _MemberPull:
    userid: str
    days: list[dict[str, Any]] = field(default_factory=list)
    customers: int | None = None
    errcode: int | None = None
    failed: bool = False
    token_rejected: bool = False
    deferred: bool = False  # not pulled yet: handed back by a worker (45033) or never reached by a stopped run

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def skipped(self) -> bool:
        return self.failed and self.errcode in MEMBER_ERRORS

    @property
    def again(self) -> bool:
        """To pull again on the thread that started the run."""
        return self.token_rejected or self.deferred


def _pull_member(api: StatsApi, userid: str, first: date, last: date, with_customers: bool,
                 probe: bool = False) -> _MemberPull:
    pull = _MemberPull(userid)
    if api.serial and not api.on_starting_thread():
        pull.failed, pull.deferred = True, True  # the run went serial: the starting thread pulls this one
        return pull
    try:
        pull.days = api.behavior(userid, first, last)
        if with_customers:
            pull.customers = api.customers(userid)
    except StatsNotPermitted:
        # On the first call it means the app may not use these APIs at all; once some member's figures
        # came through, it means only this member is outside the app's visibility.
        if probe:
            raise
        pull.failed, pull.errcode = True, NOT_PERMITTED
    except _TokenRejected:
        pull.failed, pull.token_rejected = True, True
    except _Deferred:
        pull.failed, pull.deferred = True, True
    except WeChatClientException as error:
        pull.failed, pull.errcode = True, error.errcode
        if error.errcode not in MEMBER_ERRORS:
            log.warning("WeCom stats for %s failed: %s %s", userid, error.errcode, error.errmsg)
    return pull


@dataclass
class _Fetched:
    pulls: list[_MemberPull] = field(default_factory=list)
    groups: dict[tuple[str, date], dict[str, Any]] = field(default_factory=dict)
    group_owners: list[str] = field(default_factory=list)
    group_days: list[date] = field(default_factory=list)  # days whose group figures came for every owner
    stopped: str | None = None


def fetch_stats(api: StatsApi, userids: Sequence[str], first: date, last: date, *, with_customers: bool,
                concurrency: int, progress: Callable[[int, int], None] | None = None) -> _Fetched:
    """Everything WeCom says about these members and days, with no database session in use (the caller stores
    it afterwards, in one short write). The first member is pulled alone: a 48002 costs one call."""
    fetched = _Fetched()
    if not userids:
        return fetched
    try:
        fetched.pulls.append(_pull_member(api, userids[0], first, last, with_customers, probe=True))
        if progress:
            progress(1, len(userids))
        _pull_all(api, userids[1:], first, last, with_customers, concurrency, len(userids), progress, fetched.pulls)
        if any(pull.token_rejected for pull in fetched.pulls):
            api.renew_token()
        # Handed back by the workers (a rejected token, or 45033): pulled one at a time, in order, after a
        # pause when WeCom asked for less concurrency.
        if any(pull.deferred for pull in fetched.pulls):
            log.info("WeCom asked for less concurrency (45033): going on one call at a time")
            api.sleep(CONCURRENCY_BACKOFF[0])
        for index, pull in enumerate(fetched.pulls):
            if pull.again:
                fetched.pulls[index] = _pull_member(api, pull.userid, first, last, with_customers)
        fetched.group_owners = [pull.userid for pull in fetched.pulls if not pull.skipped]
        day = first
        while day <= last:
            for start in range(0, len(fetched.group_owners), OWNERS_PER_CALL):
                chunk = fetched.group_owners[start:start + OWNERS_PER_CALL]
                for owner, data in api.groups(chunk, day).items():
                    fetched.groups[(owner, day)] = data
            fetched.group_days.append(day)
            day += timedelta(days=1)
    except StatsStopped as stop:
        # What came through is kept: members pulled and whole days of group figures; the rest is left as stored.
        fetched.stopped = str(stop)
    return fetched


def sync_stats(session: Session, client: Any, userids: Sequence[str], first: date, last: date, *, now: datetime,
               concurrency: int = 4, progress: Callable[[int, int], None] | None = None,
               sleep: Callable[[float], None] = _time.sleep) -> SyncReport:
    """Pull and store the days first..last for these members: one behaviour call per member (per 30 days), the
    group figures by owner one day at a time, and today's customer count as of yesterday when yesterday is pulled.

    Raises StatsNotPermitted on 48002 after one call and SyncWindowError for days WeCom will not give. All
    calls are made before `session` is first used, so the write that follows is short. Stored rows are
    replaced by what WeCom says now."""
    today = wecom_today(now)
    check_window(first, last, today)
    api = StatsApi(client, sleep)
    with_customers = last == today - timedelta(days=1)
    fetched = fetch_stats(api, userids, first, last, with_customers=with_customers, concurrency=concurrency,
                          progress=progress)
    pulls = fetched.pulls
    behavior_rows = _store_behavior(session, [p for p in pulls if p.ok], first, last, now)
    customer_rows = _store_customers(session, [p for p in pulls if p.ok and p.customers is not None], last, now)
    group_rows = _store_groups(session, fetched, first, last, now)
    _store_gaps(session, pulls, first, last, now)
    return SyncReport(first=first, last=last, members=len(userids), behavior_rows=behavior_rows,
                      group_rows=group_rows, customer_snapshots=customer_rows, calls=api.calls,
                      skipped=tuple(p.userid for p in pulls if p.skipped and p.errcode != NO_CONTACT_PERMISSION),
                      failed=tuple(p.userid for p in pulls if p.failed and not p.skipped and not p.again),
                      stopped=fetched.stopped,
                      no_permission=tuple(p.userid for p in pulls if p.errcode == NO_CONTACT_PERMISSION),
                      not_pulled=tuple(p.userid for p in pulls if p.again)
                      + tuple(userids[len(pulls):]), serial=api.serial)


def _pull_all(api: StatsApi, userids: Sequence[str], first: date, last: date, with_customers: bool,
              concurrency: int, total: int, progress: Callable[[int, int], None] | None,
              pulls: list[_MemberPull]) -> None:
    """Pull these members in parallel into `pulls` (in order). Each starts as "not pulled", so a run that stops
    keeps every member already pulled and knows which it did not reach."""
    if not userids:
        return
    start = len(pulls)
    pulls.extend(_MemberPull(userid, failed=True, deferred=True) for userid in userids)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="wecom-stats") as pool:
        futures: list[Future[_MemberPull]] = [
            pool.submit(_pull_member, api, userid, first, last, with_customers) for userid in userids]
        try:
            done_count = 1
            for index, future in enumerate(futures):
                pulls[start + index] = future.result()
                done_count += 1
                if progress and (done_count % 100 == 0 or done_count == total):
                    progress(done_count, total)
        except StatsStopped:
            for future in futures:
                future.cancel()
            wait(futures)
            for index, future in enumerate(futures):
                if future.done() and not future.cancelled() and future.exception() is None:
                    pulls[start + index] = future.result()
            raise


def _store_behavior(session: Session, pulls: list[_MemberPull], first: date, last: date, now: datetime) -> int:
    wanted = {pull.userid for pull in pulls}
    existing = {(row.userid, row.day): row for row in session.scalars(
        select(WeComBehaviorDay).where(WeComBehaviorDay.day >= first, WeComBehaviorDay.day <= last))
        if row.userid in wanted}
    stored = 0
    for pull in pulls:
        for item in pull.days:
            day = _day_of(item["stat_time"])
            if not first <= day <= last:
                continue
            try:
                values = dict(
                    chat_cnt=wecom_count(item.get("chat_cnt")), message_cnt=wecom_count(item.get("message_cnt")),
                    reply_percentage=_decimal(item.get("reply_percentage"), HUNDRED),
                    avg_reply_time=_decimal(item.get("avg_reply_time")),
                    negative_feedback_cnt=wecom_count(item.get("negative_feedback_cnt")),
                    new_apply_cnt=wecom_count(item.get("new_apply_cnt")),
                    new_contact_cnt=wecom_count(item.get("new_contact_cnt")), fetched_at=now)
            except NumberError as error:
                # A figure no day can have (negative, not finite, absurdly large): the day is left unstored, so
                # the data-quality check sees a gap instead of scoring on it.
                log.warning("wecom stats: %s on %s refused (%s)", pull.userid, day, error.code)
                continue
            row = existing.get((pull.userid, day))
            if row is None:
                row = WeComBehaviorDay(userid=pull.userid, day=day, **values)
                session.add(row)
                existing[(pull.userid, day)] = row
            else:
                for name, value in values.items():
                    setattr(row, name, value)
            stored += 1
    session.flush()
    return stored


def _store_customers(session: Session, pulls: list[_MemberPull], as_of: date, now: datetime) -> int:
    existing = {row.userid: row for row in session.scalars(
        select(WeComCustomerCount).where(WeComCustomerCount.as_of == as_of))}
    for pull in pulls:
        row = existing.get(pull.userid)
        if row is None:
            session.add(WeComCustomerCount(userid=pull.userid, as_of=as_of, customers=pull.customers,
                                           fetched_at=now))
        else:
            row.customers, row.fetched_at = pull.customers or 0, now
    session.flush()
    return len(pulls)


GROUP_FIELDS = ("new_chat_cnt", "chat_total", "chat_has_msg", "new_member_cnt", "member_total", "member_has_msg",
                "msg_total")


def _store_groups(session: Session, fetched: _Fetched, first: date, last: date, now: datetime) -> int:
    """Group figures one row per owner and day. An owner WeCom leaves out had no customer groups that day:
    stored as zeros, so "no groups" is told apart from "not pulled"."""
    owners = fetched.group_owners
    if not owners or not fetched.group_days:
        return 0
    owner_set = set(owners)
    existing = {(row.owner, row.day): row for row in session.scalars(
        select(WeComGroupDay).where(WeComGroupDay.day >= first, WeComGroupDay.day <= last))
        if row.owner in owner_set}
    stored = 0
    for day in fetched.group_days:
        for owner in owners:
            data = fetched.groups.get((owner, day)) or {}
            try:
                values = {name: wecom_count(data.get(name)) for name in GROUP_FIELDS}
            except NumberError as error:
                log.warning("wecom stats: groups of %s on %s refused (%s)", owner, day, error.code)
                continue
            row = existing.get((owner, day))
            if row is None:
                session.add(WeComGroupDay(owner=owner, day=day, fetched_at=now, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
                row.fetched_at = now
            stored += 1
    session.flush()
    return stored


def _store_gaps(session: Session, pulls: list[_MemberPull], first: date, last: date, now: datetime) -> None:
    """Note each day a member could not be pulled for lack of customer-contact permission; a later pull that
    works clears the note."""
    denied = {p.userid for p in pulls if p.errcode == NO_CONTACT_PERMISSION}
    pulled = {p.userid for p in pulls if p.ok}
    existing = {(row.userid, row.day): row for row in session.scalars(
        select(WeComStatsGap).where(WeComStatsGap.day >= first, WeComStatsGap.day <= last))}
    for (userid, _day), row in existing.items():
        if userid in pulled:
            session.delete(row)
    for userid in sorted(denied):
        day = first
        while day <= last:
            row = existing.get((userid, day))
            if row is None:
                session.add(WeComStatsGap(userid=userid, day=day, errcode=NO_CONTACT_PERMISSION, noted_at=now))
            else:
                row.noted_at = now
            day += timedelta(days=1)
    session.flush()


def nightly_window(run_day: date, repull_days: int) -> tuple[date, date]:
    """Yesterday, plus the `repull_days` days before it whose figures WeCom may still change."""
    last = run_day - timedelta(days=1)
    return last - timedelta(days=repull_days), last


# -- the daily job (bot.jobs.runner.JOBS "wecom_stats_sync") ------------------------------------------------------

def sync_period(at: datetime, config: Config) -> str | None:
    """The job acts once a day (for that day's pull of yesterday), and not at all when disabled."""
    return at.date().isoformat() if config.wecom_stats.enabled else None


def run_sync_job(ctx: Any) -> str:
    """Pull yesterday and the days before it WeCom may still correct. On 48002 the admins get one message a
    day (the outbox key carries the date) and the run stops after that one call: no retry loop."""
    config, clock = ctx.config, ctx.clock
    now = clock.now()
    today = wecom_today(now)
    first, last = nightly_window(ctx.at.astimezone(WECOM_ZONE).date(), config.wecom_stats.repull_days)
    earliest, latest = sync_window(today)
    first, last = max(first, earliest), min(last, latest)
    locale = config.bot.locale
    if first > last:
        return render("wecom_stats/job_detail.txt.j2", locale, report=None, not_permitted=None)
    # A short read of its own: ctx.session is first used for the write after every call is made.
    with transaction(ctx.sessions) as session:
        userids = members_to_sync(session, config)
    try:
        report = sync_stats(ctx.session, ctx.client, userids, first, last, now=now,
                            concurrency=config.wecom_stats.concurrency)
    except StatsNotPermitted as error:
        log.error("WeCom refused the customer-contact statistics: %s", error)
        for admin in config.org.admins:
            text = render("wecom_stats/not_permitted.txt.j2", locale, errmsg=error.errmsg, path=error.path,
                          corp_id=config.wecom.corp_id, agent_id=config.wecom.agent_id)
            outbox.enqueue(ctx.session, f"wecom_stats:48002:{today.isoformat()}:{admin}", Outgoing.text(admin, text),
                           now)
        return render("wecom_stats/job_detail.txt.j2", locale, report=None, not_permitted=error)
    return render("wecom_stats/job_detail.txt.j2", locale, report=report, not_permitted=None)
