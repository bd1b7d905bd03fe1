"""The customer-contact statistics calls with bounded retries, and the parallel fetch of many members' figures."""
from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import requests
from wechatpy.exceptions import WeChatClientException

from bot.wecom.client import TOKEN_ERRORS, WECOM_ZONE

log = logging.getLogger(__name__)

MAX_SPAN_DAYS = 30  # the days one behaviour call may cover
OWNERS_PER_CALL = 100  # the owners one group call may filter on
GROUP_PAGE = 1000

BEHAVIOR_PATH = "externalcontact/get_user_behavior_data"
GROUP_PATH = "externalcontact/groupchat/statistic"
CUSTOMERS_PATH = "externalcontact/list"

NOT_PERMITTED = 48002
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


def spans(first: date, last: date, days: int = MAX_SPAN_DAYS) -> list[tuple[date, date]]:
    """first..last cut into pieces of at most `days` days (WeCom's limit per call)."""
    pieces = []
    start = first
    while start <= last:
        end = min(last, start + timedelta(days=days - 1))
        pieces.append((start, end))
        start = end + timedelta(days=1)
    return pieces


def day_start(day: date) -> int:
    """The moment WeCom names a day by in its statistics: its midnight in China, as a Unix timestamp."""
    return int(datetime.combine(day, time(0), WECOM_ZONE).timestamp())


class _TokenRejected(Exception):
    """A worker thread met a rejected token; only the thread that started the run refreshes the token."""


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
                "userid": [userid], "start_time": day_start(start), "end_time": day_start(end)})
            rows.extend(result.get("behavior_data") or [])
        return rows

    def groups(self, owners: Sequence[str], day: date) -> dict[str, dict[str, Any]]:
        """One day's group figures for up to 100 owners, page by page."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            result = self._call("post", GROUP_PATH, data={
                "day_begin_time": day_start(day), "day_end_time": day_start(day),
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
class MemberPull:
    """What one member's pull brought back, or why it did not."""

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
                 probe: bool = False) -> MemberPull:
    pull = MemberPull(userid)
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
class Fetched:
    """Everything one run fetched, before any of it is stored."""

    pulls: list[MemberPull] = field(default_factory=list)
    groups: dict[tuple[str, date], dict[str, Any]] = field(default_factory=dict)
    group_owners: list[str] = field(default_factory=list)
    group_days: list[date] = field(default_factory=list)  # days whose group figures came for every owner
    stopped: str | None = None


def fetch_stats(api: StatsApi, userids: Sequence[str], first: date, last: date, *, with_customers: bool,
                concurrency: int, progress: Callable[[int, int], None] | None = None) -> Fetched:
    """Everything WeCom says about these members and days, with no database session in use (the caller stores
    it afterwards, in one short write). The first member is pulled alone: a 48002 costs one call."""
    fetched = Fetched()
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


def _pull_all(api: StatsApi, userids: Sequence[str], first: date, last: date, with_customers: bool,
              concurrency: int, total: int, progress: Callable[[int, int], None] | None,
              pulls: list[MemberPull]) -> None:
    """Pull these members in parallel into `pulls` (in order). Each starts as "not pulled", so a run that stops
    keeps every member already pulled and knows which it did not reach."""
    if not userids:
        return
    start = len(pulls)
    pulls.extend(MemberPull(userid, failed=True, deferred=True) for userid in userids)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="wecom-stats") as pool:
        futures: list[Future[MemberPull]] = [
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
