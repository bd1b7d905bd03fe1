"""The one fake WeCom: a loopback HTTP server speaking the /cgi-bin/ JSON API to tests, benchmarks and the sandbox."""

# Behaviour chosen where WeCom's documentation is silent:
#
# * An unimplemented path answers HTTP 404 with a plain-text body naming it, so a missing endpoint fails a
#   test loudly instead of looking like a WeCom errcode the bot might handle. The call is still recorded
#   (a path outside /cgi-bin/ is not).
# * A GET to a POST endpoint answers 43002, a POST to a GET endpoint 43001; a body that is not a JSON object
#   answers 47001.
# * Per-member limit: a delivery is dropped when the member already had 30 deliveries in the last 60 s or
#   1000 in the last 3600 s (sliding windows over the fake's clock, half-open: one exactly 60 s old no
#   longer counts). Only deliveries count; suppressed duplicates and dropped messages do not.
# * Duplicate check ("同样内容（请求json）的消息，不会重复收到"): per recipient, the whole request JSON except the
#   recipient fields (touser/toparty/totag), compared canonically (keys sorted), so a field no one sees such as
#   duplicate_check_interval counts too. A request with the check on is dropped (errcode 0, a msgid, nothing
#   delivered) when an identical one reached that member less than its own duplicate_check_interval ago; every
#   delivery is remembered, with the check on or off. Checks run dup first, then limits, per recipient.
# * Company-wide ceilings per API (all paths but gettoken): 10,000 calls in any 60 s and 150,000 in any 3,600 s;
#   past one, calls to that API answer 45009 for the window's length (60 s, 60 min). Refused calls do not count.
# * set_trusted_ips(...) models 企业可信IP: calls from another address answer 60020 on every API but gettoken
#   (gettoken still works, so a test call reveals it), naming the address seen as WeCom does ("from ip: …").
# * Stats windows are whole Asia/Shanghai days, both ends inclusive: at most 30 days per call and nothing
#   older than today − 180 days. Behaviour data may include today; group statistics must end by yesterday.
#   Every window violation answers 600018. Several userids (or a partyid) answer their per-day sum;
#   reply_percentage and avg_reply_time are averaged weighted by chat_cnt and only present when chat_cnt > 0.
# * Group statistics sum each owner's fields over the days asked; owners without data are left out.
# * Unknown userids in stats filters answer 60111; unknown departments answer 60003.
# * externalcontact/list answers a member's customers as generated external_userids ("wm<userid>_<n>"), and
#   84061 when the member has none, as WeCom does. set_stats_permission(False) makes the three customer-contact
#   endpoints answer 48002, as when the app is not among 客户联系 → 可调用应用.
# * Only members with status 1 receive messages; others are reported in `invaliduser` like unknown ones.
# * update_template_card (doc 94888): each response_code (one from message/send, one per click) updates once,
#   within 72 h; an unknown, used or expired one answers 40058 (the docs name no errcode for it). The call must
#   name whom to update (userids/partyids/tagids or atall); userids that did not receive the card, or are
#   unknown, come back lowercased in the `invaliduser` list and the rest are still updated. `button` only
#   applies to button, vote and multiple-choice cards.
# * message/send omits invaliduser/invalidparty/invalidtag when empty. Besides the five brief types it
#   takes `file` and `image` referring to a media_id from media/upload (unknown → 40007).
# * gettoken returns the current token while it is valid and always says expires_in 7200, as WeCom does.
# * Visibility (可见范围, set_visibility): department/list without id lists only the visible departments, with the id
#   of an invisible one 60011; user/list and user/simplelist of an invisible department and user/get of an invisible
#   member answer 60011; direct_leader and department_leader list only visible members. By default the app sees
#   department 1, i.e. everyone.
# * Customer-contact permission (deny_customer_contact): behaviour data and externalcontact/list for such a member
#   answer 84074; so does groupchat/statistic when one is among the owners (WeCom's documents are silent there;
#   the strict answer makes the bot leave them out).
# * Concurrency (limit_stats_concurrency): WeCom limits concurrent calls of one customer-contact API per company;
#   a call arriving while `limit` calls of the same API are being answered gets 45033.

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import socket
import socketserver
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

__all__ = [
    "BEHAVIOR_FIELDS",
    "CardUpdate",
    "DeliveredMessage",
    "FakeDepartment",
    "FakeMember",
    "FakeWeCom",
    "GROUP_STATISTIC_FIELDS",
    "InjectedFault",
    "RecordedCall",
    "UploadedMedia",
]

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TOKEN_LIFETIME = timedelta(seconds=7200)
RESPONSE_CODE_LIFETIME = timedelta(hours=72)  # doc 94888, updated 2025-07; older copies said 24 h
PER_MEMBER_LIMITS: tuple[tuple[timedelta, int], ...] = ((timedelta(seconds=60), 30), (timedelta(seconds=3600), 1000))
API_LIMITS: tuple[tuple[timedelta, int], ...] = ((timedelta(seconds=60), 10_000), (timedelta(seconds=3600), 150_000))
RECIPIENT_FIELDS = ("touser", "toparty", "totag")
LONGEST_LIMIT_WINDOW = max(window for window, _ in PER_MEMBER_LIMITS)
MAX_CONTENT_BYTES = 2048
DEFAULT_DUPLICATE_CHECK_INTERVAL = 1800
MAX_DUPLICATE_CHECK_INTERVAL = 4 * 3600
STATS_MAX_DAYS = 30
STATS_HORIZON_DAYS = 180
MAX_REQUEST_BODY = 64 * 1024 * 1024

MESSAGE_TYPES = frozenset({"text", "markdown", "textcard", "news", "template_card", "file", "image"})
CARD_TYPES = frozenset({"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"})
INTERACTIVE_CARD_TYPES = frozenset({"button_interaction", "vote_interaction", "multiple_interaction"})
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")
MEDIA_SIZE_LIMITS = {"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}

BEHAVIOR_FIELDS = (
    "chat_cnt",
    "message_cnt",
    "reply_percentage",
    "avg_reply_time",
    "negative_feedback_cnt",
    "new_apply_cnt",
    "new_contact_cnt",
)
_BEHAVIOR_WEIGHTED = ("reply_percentage", "avg_reply_time")
GROUP_STATISTIC_FIELDS = (
    "new_chat_cnt",
    "chat_total",
    "chat_has_msg",
    "new_member_cnt",
    "member_total",
    "member_has_msg",
    "msg_total",
    "migrate_trainee_chat_cnt",
)
_GROUP_ORDER_FIELDS = {1: "new_chat_cnt", 2: "chat_total", 3: "new_member_cnt", 4: "member_total"}

_ERRMSG = {
    -1: "system busy",
    40001: "invalid credential",
    40013: "invalid corpid",
    40014: "invalid access_token",
    41001: "access_token missing",
    42001: "access_token expired",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    60020: "not allow to access from your ip",
}

_PROXY_ERROR_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class InjectedFault:
    """One queued fault: an errcode answer, an HTTP error page, and/or a delay before answering."""

    errcode: int | None
    errmsg: str
    http_status: int | None
    delay: float

    @property
    def replaces_answer(self) -> bool:
        return self.errcode is not None or self.http_status is not None


@dataclass(frozen=True)
class RecordedCall:
    """One HTTP request the fake received; `path` is relative to /cgi-bin/ (e.g. "message/send")."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    at: datetime
    fault: InjectedFault | None = None


@dataclass(frozen=True)
class DeliveredMessage:
    """A message addressed to one member: delivered, or (in suppressed()/dropped()) withheld by WeCom."""

    touser: str
    msgtype: str
    payload: dict[str, Any]
    msgid: str
    at: datetime
    task_id: str | None = None
    response_code: str | None = None

    @property
    def content(self) -> str | None:
        """The text of a text or markdown message."""
        value = self.payload.get("content")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class CardUpdate:
    """A successful message/update_template_card call."""

    task_id: str
    response_code: str
    userids: tuple[str, ...]
    button_replace_name: str | None
    template_card: dict[str, Any] | None
    at: datetime


@dataclass(frozen=True)
class UploadedMedia:
    """A file received by media/upload."""

    media_id: str
    type: str
    filename: str
    content: bytes
    at: datetime


@dataclass(frozen=True)
class FakeDepartment:
    id: int
    name: str
    parentid: int
    order: int = 0
    name_en: str = ""
    leaders: tuple[str, ...] = ()


@dataclass(frozen=True)
class FakeMember:
    userid: str
    name: str
    departments: tuple[int, ...]
    main_department: int
    direct_leader: tuple[str, ...] = ()
    position: str = ""
    status: int = 1
    alias: str = ""


_CHANGEABLE_MEMBER_FIELDS = frozenset(
    {"name", "departments", "main_department", "direct_leader", "position", "status", "alias"}
)


@dataclass
class _ResponseCodeGrant:
    task_id: str
    issued_at: datetime
    used: bool = False


@dataclass
class _Answer:
    """What the handler writes back: an HTTP status and a body."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=UTF-8"

    @classmethod
    def json(cls, payload: Mapping[str, Any]) -> _Answer:
        return cls(200, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


class _ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str | None = None, **extra: Any) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.errmsg = errmsg or _ERRMSG.get(errcode, "error")
        self.extra = extra


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    raw_body: bytes
    content_type: str
    client_ip: str = "127.0.0.1"
    body: dict[str, Any] | None = None
    body_is_json_object: bool = False
    upload: tuple[str, str, bytes] | None = None  # (field name, filename, content)
    stats_slot: bool = False  # holds one of limit_stats_concurrency's slots until answered


_Endpoint = Callable[["FakeWeCom", _Request, datetime, list[DeliveredMessage]], dict[str, Any]]


# ---------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so benchmarks reuse connections
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without NODELAY a keep-alive client meets Nagle + delayed-ACK stalls of ~40 ms per call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self.server.fake._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._serve(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        pass  # recorded calls replace the access log; stderr noise slows benchmarks


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # benchmarks open many connections at once

    def __init__(self, fake: FakeWeCom) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn); that lookup is slow and needless here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that disconnects mid-request (killed bot, timed-out call) is normal traffic, not a crash.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        logger.exception("FakeWeCom connection from %s failed", client_address)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        # Keep-alive handler threads would otherwise keep answering pooled client connections after stop().
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---------------------------------------------------------------- the fake


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class FakeWeCom:
    """A fake WeCom tenant with one self-built app, served over HTTP on 127.0.0.1."""

    def __init__(
        self,
        corp_id: str = "wwfake0000000000001",
        corp_secret: str = "fake-app-secret",
        agent_id: int = 1000002,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.agent_id = agent_id
        self._clock = clock or _utc_now
        self._condition = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._subscribers: list[Callable[[DeliveredMessage], None]] = []
        self._ids = itertools.count(1)

        # the tenant
        self._departments: dict[int, FakeDepartment] = {1: FakeDepartment(1, "企业", 0)}
        self._members: dict[str, FakeMember] = {}
        self._behavior: dict[tuple[str, date], dict[str, float]] = {}
        self._group_statistics: dict[tuple[str, date], dict[str, int]] = {}
        self._customers: dict[str, int] = {}
        # Customer counts by day (end of day), for a fake whose clock moves: externalcontact/list answers the
        # count at the end of the latest day before today.
        self._customer_days: dict[str, dict[date, int]] = {}
        self._stats_allowed = True
        self._visible_departments: frozenset[int] = frozenset({1})
        self._visible_users: frozenset[str] = frozenset()
        self._no_customer_contact: set[str] = set()
        self._stats_concurrency: int | None = None
        self._stats_hold = 0.0
        self._stats_in_flight: dict[str, int] = {}

        # WeCom's memory
        self._tokens: dict[str, datetime] = {}
        self._current_token: str | None = None
        self._task_ids: set[str] = set()
        self._task_cards: dict[str, tuple[str, frozenset[str]]] = {}  # task_id → (card_type, recipients)
        self._response_codes: dict[str, _ResponseCodeGrant] = {}
        self._last_delivery_of: dict[tuple[str, str], datetime] = {}
        self._trusted_ips: frozenset[str] | None = None
        self._api_limits = API_LIMITS
        self._api_calls: dict[str, list[deque[datetime]]] = {}
        self._api_blocked_until: dict[str, datetime] = {}
        self._recent_deliveries: dict[str, deque[datetime]] = {}
        self._faults: dict[str, deque[InjectedFault]] = {}
        self._media: dict[str, UploadedMedia] = {}

        # records
        self._calls: list[RecordedCall] = []
        self._delivered: list[DeliveredMessage] = []
        self._suppressed: list[DeliveredMessage] = []
        self._dropped: list[DeliveredMessage] = []
        self._card_updates: list[CardUpdate] = []
        self._uploads: list[UploadedMedia] = []

    def __repr__(self) -> str:
        where = self.base_url if self._server else "not started"
        return f"FakeWeCom(corp_id={self.corp_id!r}, agent_id={self.agent_id}, {where})"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("FakeWeCom already started")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-wecom", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._stopping.is_set():
            return
        self._stopping.set()  # releases handlers held by an injected delay
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeWeCom is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The API base, "http://127.0.0.1:PORT/cgi-bin/", to use in place of https://qyapi.weixin.qq.com/cgi-bin/."""
        return f"http://127.0.0.1:{self.port}/cgi-bin/"

    def now(self) -> datetime:
        current = self._clock()
        if current.tzinfo is None:
            raise TypeError("FakeWeCom clock must return timezone-aware datetimes")
        return current

    # ------------------------------------------------------------ fixtures

    def add_department(
        self, id: int, name: str, parentid: int = 1, leaders: Sequence[str] = (), *, order: int = 0, name_en: str = ""
    ) -> FakeDepartment:
        """Add or replace a department; department 1 is the root and always exists."""
        with self._condition:
            if id == 1:
                parentid = 0
            elif parentid not in self._departments:
                raise ValueError(f"parent department {parentid} does not exist")
            elif id in self._ancestors_and_self(parentid):
                raise ValueError(f"department {id} cannot be its own ancestor")
            department = FakeDepartment(id, name, parentid, order, name_en, tuple(leaders))
            self._departments[id] = department
            return department

    def add_user(
        self,
        userid: str,
        name: str,
        departments: Sequence[int] = (1,),
        main_department: int | None = None,
        direct_leader: Sequence[str] = (),
        leader_in: Sequence[int] = (),
        position: str = "",
        status: int = 1,
        *,
        alias: str = "",
    ) -> FakeMember:
        """Add a member; `leader_in` makes them a department_leader of those of their departments."""
        if main_department is None:
            main_department = departments[0] if departments else 0
        with self._condition:
            if userid in self._members:
                raise ValueError(f"user {userid!r} already exists; use set_user to change it")
            member = self._validated_member(
                FakeMember(
                    userid=userid,
                    name=name,
                    departments=tuple(departments),
                    main_department=main_department,
                    direct_leader=tuple(direct_leader),
                    position=position,
                    status=status,
                    alias=alias,
                ),
                leader_in,
            )
            self._members[userid] = member
            self._set_leadership(userid, leader_in)
            return member

    def set_user(self, userid: str, *, leader_in: Sequence[int] | None = None, **changes: Any) -> FakeMember:
        """Change a member's fields (name, departments, main_department, direct_leader, position, status, alias)."""
        unknown = set(changes) - _CHANGEABLE_MEMBER_FIELDS
        if unknown:
            changeable = sorted(_CHANGEABLE_MEMBER_FIELDS)
            raise ValueError(f"set_user cannot change {sorted(unknown)}; changeable: {changeable}")
        with self._condition:
            current = self._members.get(userid)
            if current is None:
                raise ValueError(f"no user {userid!r}")
            if "departments" in changes:
                changes["departments"] = tuple(changes["departments"])
                if "main_department" not in changes and current.main_department not in changes["departments"]:
                    changes["main_department"] = changes["departments"][0]
            if "direct_leader" in changes:
                changes["direct_leader"] = tuple(changes["direct_leader"])
            updated = replace(current, **changes)
            kept_leadership = [d for d in self._led_departments(userid) if d in updated.departments]
            new_leadership = kept_leadership if leader_in is None else list(leader_in)
            self._members[userid] = self._validated_member(updated, new_leadership)
            self._set_leadership(userid, new_leadership)
            return self._members[userid]

    def remove_user(self, userid: str) -> None:
        """Delete a member, as when someone leaves; they stop being anyone's leader too."""
        with self._condition:
            if self._members.pop(userid, None) is None:
                raise ValueError(f"no user {userid!r}")
            self._set_leadership(userid, ())
            for other in list(self._members.values()):
                if userid in other.direct_leader:
                    self._members[other.userid] = replace(
                        other, direct_leader=tuple(u for u in other.direct_leader if u != userid)
                    )

    def member(self, userid: str) -> FakeMember:
        with self._condition:
            return self._members[userid]

    def department(self, id: int) -> FakeDepartment:
        with self._condition:
            return self._departments[id]

    def set_behavior_data(self, userid: str, day: date, **fields: float) -> None:
        """Set a member's customer-contact figures for one Asia/Shanghai day (merged with earlier ones)."""
        unknown = set(fields) - set(BEHAVIOR_FIELDS)
        if unknown:
            raise ValueError(f"unknown behaviour fields {sorted(unknown)}; known: {BEHAVIOR_FIELDS}")
        with self._condition:
            self._behavior.setdefault((userid, day), {}).update(fields)

    def set_group_statistic(self, owner: str, day: date, **fields: int) -> None:
        """Set a group owner's customer-group figures for one Asia/Shanghai day (merged with earlier ones)."""
        unknown = set(fields) - set(GROUP_STATISTIC_FIELDS)
        if unknown:
            raise ValueError(f"unknown group statistic fields {sorted(unknown)}; known: {GROUP_STATISTIC_FIELDS}")
        with self._condition:
            self._group_statistics.setdefault((owner, day), {}).update(fields)

    def set_customer_count(self, userid: str, count: int) -> None:
        """How many customers (external contacts) a member has now, as externalcontact/list lists them."""
        if count < 0:
            raise ValueError("a customer count cannot be negative")
        with self._condition:
            self._customers[userid] = count
            self._customer_days.pop(userid, None)

    def set_customer_counts(self, userid: str, counts: Mapping[date, int]) -> None:
        """A member's customer count at the end of each day: as the fake's clock moves on, externalcontact/list
        answers the count of the latest of these days before today (the count set by set_customer_count before
        the first of them)."""
        if any(count < 0 for count in counts.values()):
            raise ValueError("a customer count cannot be negative")
        with self._condition:
            self._customer_days[userid] = dict(counts)

    def set_stats_permission(self, allowed: bool) -> None:
        """Whether the app may call the customer-contact APIs; when not, they answer 48002."""
        with self._condition:
            self._stats_allowed = allowed

    def set_visibility(self, departments: Sequence[int] = (1,), users: Sequence[str] = ()) -> None:
        """The app's 可见范围: these departments (with their sub-departments) and these members."""
        with self._condition:
            unknown = [d for d in departments if d not in self._departments]
            if unknown:
                raise ValueError(f"unknown departments {unknown}")
            self._visible_departments = frozenset(departments)
            self._visible_users = frozenset(users)

    def deny_customer_contact(self, *userids: str, denied: bool = True) -> None:
        """Members without customer-contact permission (客户联系 → 使用范围); their stats answer 84074."""
        with self._condition:
            if denied:
                self._no_customer_contact.update(userids)
            else:
                self._no_customer_contact.difference_update(userids)

    def limit_stats_concurrency(self, limit: int | None, hold: float = 0.0) -> None:
        """At most `limit` concurrent calls of each customer-contact API (more answer 45033); each call takes
        `hold` seconds to answer, as WeCom's do. None lifts the limit."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        with self._condition:
            self._stats_concurrency, self._stats_hold = limit, hold

    def issue_response_code(self, task_id: str) -> str:
        """A fresh ResponseCode for a card click, as WeCom puts in each template_card_event callback."""
        with self._condition:
            if task_id not in self._task_ids:
                raise ValueError(f"no card with task_id {task_id!r} was sent")
            return self._grant_response_code(task_id, self.now())

    # ------------------------------------------------------------ behaviour controls

    def expire_tokens(self) -> None:
        """Make every issued access_token expired (42001), as WeCom may do early."""
        with self._condition:
            now = self.now()
            for token, expires_at in self._tokens.items():
                self._tokens[token] = min(expires_at, now)
            self._current_token = None

    def set_corp_secret(self, secret: str) -> None:
        """Change the app's Secret, as an admin resetting it does; a bot holding the old one gets 40001."""
        with self._condition:
            self.corp_secret = secret

    def set_trusted_ips(self, ips: Sequence[str] | None) -> None:
        """企业可信IP: only these addresses may call (None: any). Others get 60020 on every API but gettoken."""
        with self._condition:
            self._trusted_ips = None if ips is None else frozenset(ips)

    def set_api_limits(self, per_minute: int = 10_000, per_hour: int = 150_000) -> None:
        """Lower the company-wide per-API ceilings, so a test can reach them in a few calls."""
        with self._condition:
            self._api_limits = ((timedelta(seconds=60), per_minute), (timedelta(seconds=3600), per_hour))
            self._api_calls.clear()
            self._api_blocked_until.clear()

    def inject(
        self,
        path: str,
        *,
        errcode: int | None = None,
        errmsg: str = "",
        http_status: int | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls to `path` answer with an errcode, an HTTP error page, or a delay.

        A delay alone still processes the call (a send is delivered) and answers normally afterwards, which
        is how "the client timed out but WeCom delivered" looks. An errcode or HTTP status replaces the
        answer and the call has no effect.
        """
        if errcode is not None and http_status is not None:
            raise ValueError("inject either an errcode or an http_status, not both")
        if errcode is None and http_status is None and delay <= 0:
            raise ValueError("inject needs an errcode, an http_status or a positive delay")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = InjectedFault(errcode, errmsg or _ERRMSG.get(errcode or 0, "injected fault"), http_status, delay)
        with self._condition:
            self._faults.setdefault(_relative_path(path), deque()).extend([fault] * times)

    def clear_injections(self, path: str | None = None) -> None:
        """Drop queued faults not yet used, for one path or for all."""
        with self._condition:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(_relative_path(path), None)

    # ------------------------------------------------------------ records

    def calls(self, path: str | None = None) -> list[RecordedCall]:
        with self._condition:
            if path is None:
                return list(self._calls)
            wanted = _relative_path(path)
            return [call for call in self._calls if call.path == wanted]

    def delivered(self, touser: str | None = None) -> list[DeliveredMessage]:
        with self._condition:
            return [m for m in self._delivered if touser is None or m.touser == touser]

    def suppressed(self) -> list[DeliveredMessage]:
        """Messages the duplicate check kept from being delivered again."""
        with self._condition:
            return list(self._suppressed)

    def dropped(self) -> list[DeliveredMessage]:
        """Messages silently dropped by the per-member rate limit."""
        with self._condition:
            return list(self._dropped)

    def card_updates(self) -> list[CardUpdate]:
        with self._condition:
            return list(self._card_updates)

    def uploads(self) -> list[UploadedMedia]:
        with self._condition:
            return list(self._uploads)

    def reset_records(self) -> None:
        """Forget recorded calls, deliveries, updates and uploads; tokens, rate windows and dup history stay."""
        with self._condition:
            self._calls.clear()
            self._delivered.clear()
            self._suppressed.clear()
            self._dropped.clear()
            self._card_updates.clear()
            self._uploads.clear()

    def wait_for(
        self,
        predicate_or_touser: Callable[[DeliveredMessage], bool] | str,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[DeliveredMessage]:
        """Block until at least `count` delivered messages match; return all that match then."""
        if isinstance(predicate_or_touser, str):
            touser = predicate_or_touser

            def predicate(message: DeliveredMessage) -> bool:
                return message.touser == touser

            wanted = f"{count} message(s) to {touser!r}"
        else:
            predicate = predicate_or_touser
            wanted = f"{count} message(s) matching {getattr(predicate, '__name__', predicate)!r}"

        def matching() -> list[DeliveredMessage]:
            return [m for m in self._delivered if predicate(m)]

        with self._condition:
            if self._condition.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                return matching()
            seen = "\n".join(
                f"  {m.at:%H:%M:%S} to {m.touser}: {m.msgtype} {json.dumps(m.payload, ensure_ascii=False)[:200]}"
                for m in self._delivered
            )
            raise AssertionError(
                f"timed out after {timeout}s waiting for {wanted}; got {len(matching())}. "
                f"Delivered ({len(self._delivered)}):\n{seen or '  nothing'}\n"
                f"suppressed: {len(self._suppressed)}, dropped: {len(self._dropped)}"
            )

    def wait_for_calls(self, path: str, count: int = 1, timeout: float = 5.0) -> list[RecordedCall]:
        """Block until at least `count` requests to `path` were received (answered or not); return them."""
        wanted = _relative_path(path)

        def matching() -> list[RecordedCall]:
            return [call for call in self._calls if call.path == wanted]

        with self._condition:
            if self._condition.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                return matching()
            seen = ", ".join(f"{call.method} {call.path}" for call in self._calls[-20:])
            raise AssertionError(
                f"timed out after {timeout}s waiting for {count} call(s) to {wanted!r}; got {len(matching())}. "
                f"Last calls: {seen or 'none'}"
            )

    def subscribe(self, callback: Callable[[DeliveredMessage], None]) -> Callable[[], None]:
        """Call `callback` (on a server thread) for each delivery; returns a function that unsubscribes."""
        with self._condition:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._condition:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # ------------------------------------------------------------ request handling

    def _serve(self, handler: _Handler, method: str) -> None:
        request = self._read_request(handler, method)
        if request is None:
            return
        deliveries: list[DeliveredMessage] = []
        with self._condition:
            now = self.now()
            queue = self._faults.get(request.path)
            fault = queue.popleft() if queue else None
            self._calls.append(RecordedCall(method, request.path, request.query, request.body, now, fault))
            if fault is not None and fault.replaces_answer:
                answer = _fault_answer(fault)
            else:
                answer = self._answer(request, now, deliveries)
            self._condition.notify_all()  # wakes wait_for (deliveries) and wait_for_calls (any request)
            subscribers = list(self._subscribers) if deliveries else []
        for message in deliveries:
            for subscriber in subscribers:
                try:
                    subscriber(message)
                except Exception:  # a broken subscriber must not break the fake for everyone else
                    logger.exception("FakeWeCom subscriber failed")
        if fault is not None and fault.delay > 0:
            self._stopping.wait(fault.delay)
        if request.stats_slot:
            self._release_stats_slot(request.path)
        _write_answer(handler, answer)

    def _read_request(self, handler: _Handler, method: str) -> _Request | None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY or handler.headers.get("Transfer-Encoding"):
            handler.close_connection = True
            _write_answer(handler, _Answer(413, b"request body too large or chunked", "text/plain"))
            return None
        raw_body = handler.rfile.read(length) if length else b""
        if not url.path.startswith("/cgi-bin/"):
            _write_answer(handler, _Answer(404, f"fake WeCom: no such API {url.path}".encode(), "text/plain"))
            return None
        request = _Request(
            method=method,
            path=_relative_path(url.path),
            query={key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()},
            raw_body=raw_body,
            content_type=handler.headers.get("Content-Type", ""),
            client_ip=str(handler.client_address[0]),
        )
        if request.content_type.startswith("multipart/form-data"):
            request.upload = _parse_upload(raw_body, request.content_type)
            if request.upload is not None:
                field_name, filename, content = request.upload
                request.body = {field_name: {"filename": filename, "size": len(content)}}
        elif raw_body:
            try:
                parsed = json.loads(raw_body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                request.body, request.body_is_json_object = parsed, True
        return request

    def _answer(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> _Answer:
        route = _ROUTES.get(request.path)
        if route is None:
            return _Answer(404, f"fake WeCom: no such API /cgi-bin/{request.path}".encode(), "text/plain")
        method, endpoint = route
        try:
            if request.method != method:
                raise _ApiError(43001 if method == "GET" else 43002, f"require {method} method")
            if request.path != "gettoken":
                self._check_ip(request.client_ip)
                self._check_api_limit(request.path, now)
                self._check_token(request.query.get("access_token"), now)
            if method == "POST" and request.path != "media/upload" and not request.body_is_json_object:
                raise _ApiError(47001, "data format error: body is not a JSON object")
            result = endpoint(self, request, now, deliveries)
        except _ApiError as error:
            return _Answer.json({"errcode": error.errcode, "errmsg": error.errmsg, **error.extra})
        except Exception:  # a bug in the fake: answer loudly rather than drop the connection
            logger.exception("FakeWeCom failed on %s %s", request.method, request.path)
            return _Answer(500, f"fake WeCom crashed:\n{traceback.format_exc()}".encode(), "text/plain")
        return _Answer.json({"errcode": 0, "errmsg": "ok", **result})

    def _check_ip(self, client_ip: str) -> None:
        if self._trusted_ips is not None and client_ip not in self._trusted_ips:
            raise _ApiError(60020, f"not allow to access from your ip, hint: [{secrets.token_hex(8)}], "
                                   f"from ip: {client_ip}, more info at "
                                   "https://open.work.weixin.qq.com/devtool/query?e=60020")

    def _check_api_limit(self, path: str, now: datetime) -> None:
        blocked_until = self._api_blocked_until.get(path)
        if blocked_until is not None and now < blocked_until:
            raise _ApiError(45009, "api freq out of limit")
        windows = self._api_calls.setdefault(path, [deque() for _ in self._api_limits])
        for (window, limit), calls in zip(self._api_limits, windows):
            while calls and now - calls[0] >= window:
                calls.popleft()
            if len(calls) >= limit:
                self._api_blocked_until[path] = now + window
                raise _ApiError(45009, "api freq out of limit")
        for calls in windows:
            calls.append(now)

    def _check_token(self, token: str | None, now: datetime) -> None:
        if not token:
            raise _ApiError(41001)
        expires_at = self._tokens.get(token)
        if expires_at is None:
            raise _ApiError(40014)
        if now >= expires_at:
            raise _ApiError(42001)

    # ------------------------------------------------------------ endpoints (called with the lock held)

    def _gettoken(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> dict[str, Any]:
        if request.query.get("corpid") != self.corp_id:
            raise _ApiError(40013)
        if request.query.get("corpsecret") != self.corp_secret:
            raise _ApiError(40001)
        token = self._current_token
        if token is None or now >= self._tokens[token]:
            token = secrets.token_urlsafe(48)
            self._tokens[token] = now + TOKEN_LIFETIME
            self._current_token = token
        return {"access_token": token, "expires_in": int(TOKEN_LIFETIME.total_seconds())}

    def _message_send(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> dict[str, Any]:
        body = request.body or {}
        self._check_agent(body.get("agentid"))
        msgtype = body.get("msgtype")
        if msgtype not in MESSAGE_TYPES:
            raise _ApiError(40008, f"invalid message type {msgtype!r}")
        payload = body.get(msgtype)
        if not isinstance(payload, dict):
            raise _ApiError(40058, f"{msgtype} must be an object")
        task_id = self._validate_payload(msgtype, payload)

        check_interval = self._duplicate_check_interval(body)
        recipients, invalid = self._resolve_recipients(body)
        if not recipients:
            raise _ApiError(81013, "user & party & tag all invalid", **invalid)
        if task_id is not None:
            if task_id in self._task_ids:
                raise _ApiError(42014, f"task_id {task_id!r} already used")
            self._task_ids.add(task_id)
        if task_id is not None:
            self._task_cards[task_id] = (str(payload.get("card_type")), frozenset(recipients))
        response_code = None
        if msgtype == "template_card" and payload.get("card_type") in INTERACTIVE_CARD_TYPES:
            response_code = self._grant_response_code(str(task_id), now)

        msgid = f"fakemsgid{next(self._ids):010d}"
        request_key = json.dumps({k: v for k, v in body.items() if k not in RECIPIENT_FIELDS},
                                 sort_keys=True, ensure_ascii=False)
        for userid in recipients:
            message = DeliveredMessage(userid, msgtype, payload, msgid, now, task_id, response_code)
            dedupe_key = (userid, request_key)
            last = self._last_delivery_of.get(dedupe_key)
            if check_interval is not None and last is not None and now - last < check_interval:
                self._suppressed.append(message)
            elif self._over_member_limit(userid, now):
                self._dropped.append(message)
            else:
                self._last_delivery_of[dedupe_key] = now
                self._recent_deliveries.setdefault(userid, deque()).append(now)
                self._delivered.append(message)
                deliveries.append(message)

        result: dict[str, Any] = {**invalid, "msgid": msgid}
        if response_code is not None:
            result["response_code"] = response_code
        return result

    def _update_template_card(
        self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]
    ) -> dict[str, Any]:
        body = request.body or {}
        self._check_agent(body.get("agentid"))
        code = body.get("response_code")
        grant = self._response_codes.get(code) if isinstance(code, str) else None
        if grant is None:
            raise _ApiError(40058, "invalid response_code")
        if grant.used:
            raise _ApiError(40058, "invalid response_code: already used")
        if now - grant.issued_at > RESPONSE_CODE_LIFETIME:
            raise _ApiError(40058, "invalid response_code: expired (72 hours)")
        button = body.get("button")
        template_card = body.get("template_card")
        if not isinstance(button, dict) and not isinstance(template_card, dict):
            raise _ApiError(40058, "button or template_card required")
        card_type, recipients = self._task_cards.get(grant.task_id, ("", frozenset()))
        replace_name = button.get("replace_name") if isinstance(button, dict) else None
        if isinstance(button, dict):
            if not isinstance(replace_name, str) or not replace_name:
                raise _ApiError(40058, "button.replace_name required")
            if card_type not in INTERACTIVE_CARD_TYPES:
                raise _ApiError(40058, f"button can only be updated on interactive cards, not {card_type!r}")
        if isinstance(template_card, dict) and template_card.get("card_type") not in CARD_TYPES:
            raise _ApiError(40058, f"invalid card_type {template_card.get('card_type')!r}")
        userids = _string_list(body.get("userids"), "userids")
        partyids = _int_list(body.get("partyids"), "partyids")
        tagids = _int_list(body.get("tagids"), "tagids")
        if len(userids) > 1000 or len(partyids) > 100 or len(tagids) > 100:
            raise _ApiError(40058, "at most 1000 userids, 100 partyids and 100 tagids")
        if body.get("atall"):
            targets = set(recipients)
        else:
            if not (userids or partyids or tagids):
                raise _ApiError(40058, "userids, partyids, tagids or atall required")
            targets = {u for u in userids if u in recipients}
            for party in (p for p in partyids if p in self._departments):
                targets |= {m.userid for m in self._members_in(party, recursive=True)} & recipients
        invalid = [u.lower() for u in userids if u not in targets and not body.get("atall")]
        grant.used = True
        self._card_updates.append(
            CardUpdate(
                task_id=grant.task_id,
                response_code=code,
                userids=tuple(sorted(targets)),
                button_replace_name=replace_name,
                template_card=template_card if isinstance(template_card, dict) else None,
                at=now,
            )
        )
        return {"invaliduser": invalid} if invalid else {}

    def _department_list(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> dict[str, Any]:
        if not request.query.get("id"):
            return {"department": [self._department_json(d) for d in self._subtree(1) if self._visible(d.id)]}
        root = self._department_id(request.query["id"])
        if not self._visible(root):
            raise _ApiError(60011, f"no privilege to access/modify contact/party/agent, department {root}")
        return {"department": [self._department_json(d) for d in self._subtree(root)]}

    def _user_list(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> dict[str, Any]:
        return {"userlist": [self._member_json(m) for m in self._members_of_request(request)]}

    def _user_simplelist(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> dict[str, Any]:
        return {
            "userlist": [
                {"userid": m.userid, "name": m.name, "department": list(m.departments)}
                for m in self._members_of_request(request)
            ]
        }

    def _user_get(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> dict[str, Any]:
        member = self._members.get(request.query.get("userid", ""))
        if member is None:
            raise _ApiError(60111, "userid not found")
        if not self._visible_member(member):
            raise _ApiError(60011, f"no privilege to access/modify contact/party/agent, user {member.userid}")
        return self._member_json(member)

    def _behavior_data(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> dict[str, Any]:
        self._check_stats_permission()
        self._take_stats_slot(request)
        body = request.body or {}
        userids = _string_list(body.get("userid"), "userid")
        partyids = _int_list(body.get("partyid"), "partyid")
        if not userids and not partyids:
            raise _ApiError(40058, "userid and partyid cannot both be empty")
        if len(userids) > 100 or len(partyids) > 100:
            raise _ApiError(40058, "at most 100 userid and 100 partyid")
        members = set(self._known_userids(userids))
        self._check_customer_contact(userids)
        for partyid in partyids:
            members.update(m.userid for m in self._members_in(self._department_id(str(partyid)), recursive=True))
        first, last = self._stats_days(body.get("start_time"), body.get("end_time"), now, latest_offset=0)

        days = []
        for day in _days(first, last):
            rows = [self._behavior[(u, day)] for u in sorted(members) if (u, day) in self._behavior]
            entry: dict[str, Any] = {"stat_time": _day_start(day)}
            for name in BEHAVIOR_FIELDS:
                if name not in _BEHAVIOR_WEIGHTED:
                    entry[name] = int(sum(row.get(name, 0) for row in rows))
            chats = entry["chat_cnt"]
            if chats > 0:
                # WeCom sums counts; for the two averages a chat-weighted mean is the faithful aggregate.
                for name in _BEHAVIOR_WEIGHTED:
                    weighted = sum(row.get(name, 0) * row.get("chat_cnt", 0) for row in rows) / chats
                    entry[name] = round(weighted, 2) if name == "reply_percentage" else round(weighted)
            days.append(entry)
        return {"behavior_data": days}

    def _groupchat_statistic(
        self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]
    ) -> dict[str, Any]:
        self._check_stats_permission()
        self._take_stats_slot(request)
        body = request.body or {}
        begin = body.get("day_begin_time")
        first, last = self._stats_days(begin, body.get("day_end_time") or begin, now, latest_offset=1)
        owner_filter = body.get("owner_filter") or {}
        if not isinstance(owner_filter, dict):
            raise _ApiError(40058, "owner_filter must be an object")
        owners = _string_list(owner_filter.get("userid_list"), "owner_filter.userid_list")
        if len(owners) > 100:
            raise _ApiError(40058, "at most 100 owners in owner_filter")
        if not owners and len(self._members) > 1000:
            raise _ApiError(81017, "too many members visible; pass owner_filter")
        wanted = set(self._known_userids(owners)) if owners else None
        self._check_customer_contact(owners)
        order_by = body.get("order_by", 1)
        if order_by not in _GROUP_ORDER_FIELDS:
            raise _ApiError(40058, "order_by must be 1..4")
        offset, limit = body.get("offset", 0), body.get("limit", 500)
        if not _is_int(offset) or offset < 0 or not _is_int(limit) or not 1 <= limit <= 1000:
            raise _ApiError(40058, "offset must be >= 0 and limit 1..1000")

        totals: dict[str, dict[str, int]] = {}
        for (owner, day), fields in self._group_statistics.items():
            if first <= day <= last and (wanted is None or owner in wanted):
                sums = totals.setdefault(owner, dict.fromkeys(GROUP_STATISTIC_FIELDS, 0))
                for name, value in fields.items():
                    sums[name] += value
        sort_field = _GROUP_ORDER_FIELDS[order_by]
        ascending = bool(body.get("order_asc", 0))
        ranked = sorted(totals.items(), key=lambda item: item[0])  # owner order breaks ties, stably
        ranked.sort(key=lambda item: item[1][sort_field], reverse=not ascending)
        page = ranked[offset : offset + limit]
        return {
            "total": len(ranked),
            "next_offset": offset + len(page),
            "items": [{"owner": owner, "data": data} for owner, data in page],
        }

    def _external_contact_list(
        self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]
    ) -> dict[str, Any]:
        self._check_stats_permission()
        self._take_stats_slot(request)
        userid = request.query.get("userid", "")
        self._known_userids([userid])
        self._check_customer_contact([userid])
        count = self._customers.get(userid, 0)
        today = now.astimezone(SHANGHAI).date()
        past = [day for day in self._customer_days.get(userid, {}) if day < today]
        if past:
            count = self._customer_days[userid][max(past)]
        if count == 0:
            raise _ApiError(84061, "not external contact")
        return {"external_userid": [f"wm{userid}_{index:06d}" for index in range(count)]}

    def _media_upload(self, request: _Request, now: datetime, deliveries: list[DeliveredMessage]) -> dict[str, Any]:
        media_type = request.query.get("type", "")
        if media_type not in MEDIA_SIZE_LIMITS:
            raise _ApiError(40004, f"invalid media type {media_type!r}")
        if request.upload is None:
            raise _ApiError(41005, "media data missing: no file part")
        field_name, filename, content = request.upload
        if field_name != "media":
            raise _ApiError(41005, f"media data missing: file field is {field_name!r}, not 'media'")
        if not 5 <= len(content) <= MEDIA_SIZE_LIMITS[media_type]:
            raise _ApiError(40006, f"invalid {media_type} size {len(content)}")
        media = UploadedMedia(f"fakemedia{next(self._ids):010d}", media_type, filename, content, now)
        self._media[media.media_id] = media
        self._uploads.append(media)
        return {"type": media_type, "media_id": media.media_id, "created_at": str(int(now.timestamp()))}

    # ------------------------------------------------------------ helpers (lock held)

    def _check_stats_permission(self) -> None:
        if not self._stats_allowed:
            raise _ApiError(48002, "api forbidden: the app is not allowed to call customer contact APIs")

    def _check_customer_contact(self, userids: Sequence[str]) -> None:
        denied = [u for u in userids if u in self._no_customer_contact]
        if denied:
            raise _ApiError(84074, f"no external contact permission: {'|'.join(denied)}")

    def _take_stats_slot(self, request: _Request) -> None:
        if self._stats_concurrency is None:
            return
        busy = self._stats_in_flight.get(request.path, 0)
        if busy >= self._stats_concurrency:
            raise _ApiError(45033)
        self._stats_in_flight[request.path] = busy + 1
        request.stats_slot = True

    def _release_stats_slot(self, path: str) -> None:
        # Held outside the lock, so other calls of the same API arrive while this one is "being answered".
        self._stopping.wait(self._stats_hold)
        with self._condition:
            self._stats_in_flight[path] = max(0, self._stats_in_flight.get(path, 1) - 1)

    def _visible(self, department: int) -> bool:
        return bool(self._ancestors_and_self(department) & self._visible_departments)

    def _visible_member(self, member: FakeMember) -> bool:
        return member.userid in self._visible_users or any(self._visible(d) for d in member.departments)

    def _visible_userid(self, userid: str) -> bool:
        member = self._members.get(userid)
        return member is not None and self._visible_member(member)

    def _check_agent(self, agentid: Any) -> None:
        if not _is_int(agentid):
            raise _ApiError(40056, "invalid agentid")
        if agentid != self.agent_id:
            raise _ApiError(301002, "access_token and agentid mismatch")

    def _validate_payload(self, msgtype: str, payload: dict[str, Any]) -> str | None:
        """Check a message's content; return its card task_id, if it needs one."""
        if msgtype in ("text", "markdown"):
            content = payload.get("content")
            if not isinstance(content, str) or not content:
                raise _ApiError(44004, f"{msgtype}.content is empty")
            if len(content.encode("utf-8")) > MAX_CONTENT_BYTES:
                raise _ApiError(45002, f"{msgtype}.content exceeds {MAX_CONTENT_BYTES} bytes")
        elif msgtype == "textcard":
            for name, limit in (("title", 128), ("description", 512), ("url", 2048)):
                value = payload.get(name)
                if not isinstance(value, str) or not value:
                    raise _ApiError(40058, f"textcard.{name} required")
                if len(value.encode("utf-8")) > limit:
                    raise _ApiError(45002, f"textcard.{name} exceeds {limit} bytes")
        elif msgtype == "news":
            articles = payload.get("articles")
            if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
                raise _ApiError(40058, "news.articles must hold 1..8 articles")
            if any(not isinstance(a, dict) or not a.get("title") for a in articles):
                raise _ApiError(40058, "every news article needs a title")
        elif msgtype in ("file", "image"):
            if payload.get("media_id") not in self._media:
                raise _ApiError(40007, "invalid media_id")
        elif msgtype == "template_card":
            card_type = payload.get("card_type")
            if card_type not in CARD_TYPES:
                raise _ApiError(40058, f"invalid card_type {card_type!r}")
            task_id = payload.get("task_id")
            if card_type in INTERACTIVE_CARD_TYPES or "action_menu" in payload or task_id is not None:
                if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
                    raise _ApiError(42014, "invalid task_id: required, [0-9a-zA-Z_-@], at most 128 bytes")
                return task_id
        return None

    @staticmethod
    def _duplicate_check_interval(body: Mapping[str, Any]) -> timedelta | None:
        if not body.get("enable_duplicate_check"):
            return None
        seconds = body.get("duplicate_check_interval", DEFAULT_DUPLICATE_CHECK_INTERVAL)
        if not _is_int(seconds) or not 0 < seconds <= MAX_DUPLICATE_CHECK_INTERVAL:
            raise _ApiError(40058, f"duplicate_check_interval must be 1..{MAX_DUPLICATE_CHECK_INTERVAL}")
        return timedelta(seconds=seconds)

    def _resolve_recipients(self, body: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
        """Members a send reaches (status 1, in order, once each) and WeCom's invaliduser/party/tag fields."""
        touser, toparty, totag = (str(body.get(k) or "") for k in ("touser", "toparty", "totag"))
        if not (touser or toparty or totag):
            raise _ApiError(82001, "touser, toparty and totag are all empty")
        recipients: dict[str, None] = {}
        invalid_users: list[str] = []
        invalid_parties: list[str] = []
        if touser == "@all":
            recipients.update((m.userid, None) for m in self._members.values()
                              if m.status == 1 and self._visible_member(m))
        else:
            for userid in filter(None, touser.split("|")):
                member = self._members.get(userid)
                # Only people inside the app's 可见范围 can receive its messages (wecom.md §2).
                if member is not None and member.status == 1 and self._visible_member(member):
                    recipients[userid] = None
                elif userid.lower() not in invalid_users:
                    invalid_users.append(userid.lower())  # WeCom reports invalid ids lowercased
        for party in filter(None, toparty.split("|")):
            if not party.isdigit() or int(party) not in self._departments:
                invalid_parties.append(party)
                continue
            recipients.update((m.userid, None) for m in self._members_in(int(party), recursive=True)
                              if m.status == 1 and self._visible_member(m))
        invalid = {
            "invaliduser": "|".join(invalid_users),
            "invalidparty": "|".join(invalid_parties),
            "invalidtag": "|".join(filter(None, totag.split("|"))),  # the fake has no tags
        }
        return list(recipients), {key: value for key, value in invalid.items() if value}

    def _over_member_limit(self, userid: str, now: datetime) -> bool:
        recent = self._recent_deliveries.get(userid)
        if not recent:
            return False
        while recent and now - recent[0] >= LONGEST_LIMIT_WINDOW:
            recent.popleft()
        for window, limit in PER_MEMBER_LIMITS:
            in_window = 0
            for at in reversed(recent):  # newest first, so the count stops at the window's edge
                if now - at >= window:
                    break
                in_window += 1
                if in_window >= limit:
                    return True
        return False

    def _grant_response_code(self, task_id: str, now: datetime) -> str:
        code = secrets.token_urlsafe(32)
        self._response_codes[code] = _ResponseCodeGrant(task_id, now)
        return code

    def _stats_days(self, start: Any, end: Any, now: datetime, *, latest_offset: int) -> tuple[date, date]:
        """The Asia/Shanghai days a stats request covers, or 600018 when WeCom would refuse the window."""
        if not _is_int(start) or not _is_int(end):
            raise _ApiError(40058, "start and end times must be integer unix seconds")
        today = now.astimezone(SHANGHAI).date()
        try:
            first, last = _shanghai_day(start), _shanghai_day(end)
        except (OverflowError, OSError, ValueError):  # milliseconds overflow datetime on some platforms
            raise _ApiError(600018, "invalid start_time or end_time") from None
        latest = today - timedelta(days=latest_offset)
        if first > last:
            raise _ApiError(600018, "invalid time range: start after end")
        if (last - first).days + 1 > STATS_MAX_DAYS:
            raise _ApiError(600018, f"invalid time range: more than {STATS_MAX_DAYS} days")
        if first < today - timedelta(days=STATS_HORIZON_DAYS):
            raise _ApiError(600018, f"invalid time range: older than {STATS_HORIZON_DAYS} days")
        if last > latest:
            raise _ApiError(600018, "invalid time range: no data yet for " + last.isoformat())
        return first, last

    def _known_userids(self, userids: Sequence[str]) -> list[str]:
        unknown = [u for u in userids if u not in self._members]
        if unknown:
            raise _ApiError(60111, f"userid not found: {'|'.join(unknown)}")
        return list(userids)

    def _department_id(self, raw: str) -> int:
        if not raw.isdigit() or int(raw) not in self._departments:
            raise _ApiError(60003, f"department not found: {raw}")
        return int(raw)

    def _members_of_request(self, request: _Request) -> list[FakeMember]:
        department = self._department_id(request.query.get("department_id", ""))
        if not self._visible(department):
            raise _ApiError(60011, f"no privilege to access/modify contact/party/agent, department {department}")
        return self._members_in(department, recursive=request.query.get("fetch_child") == "1")

    def _members_in(self, department: int, *, recursive: bool) -> list[FakeMember]:
        wanted = {d.id for d in self._subtree(department)} if recursive else {department}
        return [m for m in self._members.values() if wanted.intersection(m.departments)]

    def _subtree(self, root: int) -> Iterator[FakeDepartment]:
        """The department and its descendants, depth first, siblings by (order, id)."""
        children: dict[int, list[FakeDepartment]] = {}
        for department in self._departments.values():
            if department.id != 1:
                children.setdefault(department.parentid, []).append(department)
        stack = [self._departments[root]]
        while stack:
            department = stack.pop()
            yield department
            stack.extend(sorted(children.get(department.id, []), key=lambda d: (d.order, d.id), reverse=True))

    def _ancestors_and_self(self, department: int) -> set[int]:
        seen: set[int] = set()
        while department in self._departments and department not in seen:
            seen.add(department)
            department = self._departments[department].parentid
        return seen

    def _led_departments(self, userid: str) -> list[int]:
        return [d.id for d in self._departments.values() if userid in d.leaders]

    def _set_leadership(self, userid: str, leader_in: Sequence[int]) -> None:
        """Department leaders are the one record of leadership; is_leader_in_dept is derived from them."""
        for department in list(self._departments.values()):
            leads = department.id in leader_in
            if leads and userid not in department.leaders:
                self._departments[department.id] = replace(department, leaders=department.leaders + (userid,))
            elif not leads and userid in department.leaders:
                leaders = tuple(u for u in department.leaders if u != userid)
                self._departments[department.id] = replace(department, leaders=leaders)

    def _validated_member(self, member: FakeMember, leader_in: Sequence[int]) -> FakeMember:
        missing = [d for d in (*member.departments, *leader_in) if d not in self._departments]
        if missing:
            raise ValueError(f"unknown departments {missing} for {member.userid!r}")
        if not member.departments:
            raise ValueError(f"user {member.userid!r} needs at least one department")
        if member.main_department not in member.departments:
            raise ValueError(f"main_department {member.main_department} is not among {member.departments}")
        if not set(leader_in) <= set(member.departments):
            raise ValueError(f"{member.userid!r} can only lead departments they belong to")
        return member

    def _department_json(self, department: FakeDepartment) -> dict[str, Any]:
        return {
            "id": department.id,
            "name": department.name,
            "name_en": department.name_en,
            "department_leader": [u for u in department.leaders if self._visible_userid(u)],
            "parentid": department.parentid,
            "order": department.order,
        }

    def _member_json(self, member: FakeMember) -> dict[str, Any]:
        return {
            "userid": member.userid,
            "name": member.name,
            "department": list(member.departments),
            "order": [0] * len(member.departments),
            "position": member.position,
            "is_leader_in_dept": [int(member.userid in self._departments[d].leaders) for d in member.departments],
            "direct_leader": [u for u in member.direct_leader if self._visible_userid(u)],
            "main_department": member.main_department,
            "status": member.status,
            "alias": member.alias,
        }


_ROUTES: dict[str, tuple[str, _Endpoint]] = {
    "gettoken": ("GET", FakeWeCom._gettoken),
    "message/send": ("POST", FakeWeCom._message_send),
    "message/update_template_card": ("POST", FakeWeCom._update_template_card),
    "department/list": ("GET", FakeWeCom._department_list),
    "user/list": ("GET", FakeWeCom._user_list),
    "user/simplelist": ("GET", FakeWeCom._user_simplelist),
    "user/get": ("GET", FakeWeCom._user_get),
    "externalcontact/get_user_behavior_data": ("POST", FakeWeCom._behavior_data),
    "externalcontact/groupchat/statistic": ("POST", FakeWeCom._groupchat_statistic),
    "externalcontact/list": ("GET", FakeWeCom._external_contact_list),
    "media/upload": ("POST", FakeWeCom._media_upload),
}


# ---------------------------------------------------------------- module helpers


def _relative_path(path: str) -> str:
    path = urlsplit(path).path.lstrip("/")
    return path.removeprefix("cgi-bin/").strip("/")


def _fault_answer(fault: InjectedFault) -> _Answer:
    if fault.http_status is not None:
        phrase = HTTPStatus(fault.http_status).phrase
        page = _PROXY_ERROR_PAGE.format(status=fault.http_status, phrase=phrase)
        return _Answer(fault.http_status, page.encode("ascii"), "text/html")
    return _Answer.json({"errcode": fault.errcode, "errmsg": fault.errmsg})


def _write_answer(handler: _Handler, answer: _Answer) -> None:
    # Status line, headers and body go out in one write: one packet per answer, no Nagle stall.
    head = (
        f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}\r\n"
        f"Content-Type: {answer.content_type}\r\n"
        f"Content-Length: {len(answer.body)}\r\n"
        + ("Connection: close\r\n" if handler.close_connection else "")
        + "\r\n"
    )
    try:
        handler.wfile.write(head.encode("latin-1") + answer.body)
    except OSError:  # the client gave up (e.g. its timeout fired during an injected delay)
        handler.close_connection = True


def _parse_upload(body: bytes, content_type: str) -> tuple[str, str, bytes] | None:
    """The first file part of a multipart/form-data body as (field name, filename, content)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        return None
    delimiter = b"--" + match.group(1).encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, separator, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            continue
        headers = head.decode("utf-8", "replace")
        filename = re.search(r'filename="([^"]*)"', headers)
        name = re.search(r'\bname="([^"]*)"', headers)
        if filename is not None:
            return (name.group(1) if name else "media", filename.group(1), content.removesuffix(b"\r\n"))
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _ApiError(40058, f"{name} must be a list of strings")
    return value


def _int_list(value: Any, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(_is_int(v) for v in value):
        raise _ApiError(40058, f"{name} must be a list of integers")
    return value


def _shanghai_day(unix_seconds: int) -> date:
    return datetime.fromtimestamp(unix_seconds, SHANGHAI).date()


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time(0), SHANGHAI).timestamp())


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)
