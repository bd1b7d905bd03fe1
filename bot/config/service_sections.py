"""The sections that run the service ([wecom] [database] [server] [org] [schedule] [bot] [sender]): shape and checks."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url

from bot.config.calendar_file import CalendarFile, CalendarFileError, load_calendar_file
from bot.config.problems import SectionReader
from bot.templates import TEMPLATE_ROOT

REAL_API_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
# WeCom's duplicate-check window is at most 4 h. Rows get windows between the configured shortest one and
# that, one value per row of a member; 4 h hold at most 4 x 1,000 rows, so 4,001 values must remain.
MAX_DUPLICATE_WINDOW = 14400
MAX_SHORTEST_DUPLICATE_WINDOW = MAX_DUPLICATE_WINDOW - 4000
DEFAULT_CALENDAR_FILE = "calendar.toml"
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")


class Secret:
    """A string that never shows itself in a repr, a log line or an f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('******')"

    __str__ = __repr__


@dataclass(frozen=True)
class WeComConfig:
    corp_id: str
    agent_id: int
    secret: Secret
    token: Secret
    encoding_aes_key: Secret
    api_base_url: str = REAL_API_BASE_URL
    request_timeout: float = 5.0
    # The shortest duplicate-check window (s); each outbox row gets its own window from here to WeCom's 4 h.
    duplicate_check_interval: int = 3600


@dataclass(frozen=True)
class DatabaseConfig:
    url: Secret  # may carry a password

    @property
    def is_sqlite(self) -> bool:
        return self.url.reveal().startswith("sqlite")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    max_body_bytes: int = 65536
    # The edge (bot/wecom/edge.py): one abusive client must not starve WeCom's callbacks.
    connection_limit: int = 1000
    channel_timeout: int = 30
    request_timeout: int = 10
    max_header_bytes: int = 16384


@dataclass(frozen=True)
class OrgConfig:
    admins: tuple[str, ...] = ()
    departments: tuple[int, ...] = (1,)
    sync_at: time = time(2, 40)


@dataclass(frozen=True)
class ScheduleConfig:
    timezone: str = "Asia/Shanghai"
    # A fire time missed while the bot was down is run at start-up if it is at most this old.
    catch_up_grace_hours: int = 12
    # How often the scheduler looks for due, missed or abandoned runs and renews its lease (seconds).
    tick_seconds: float = 15.0
    # The admin's holiday file (docs/calendar.md), relative to the config file; optional.
    calendar_file: Path | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class BotConfig:
    locale: str = "zh_CN"
    conversation_timeout_minutes: int = 30
    inbox_workers: int = 4
    # WeChat (微信插件) users see neither markdown nor template cards: send markdown as plain text and
    # give every card a plain-text copy that says how to answer by text.
    text_fallback: bool = True
    # People known to use WeCom through WeChat: plain text only, never a card.
    wechat_users: tuple[str, ...] = ()
    # The welcome goes out on a person's first enter_agent, and again after this long away.
    welcome_again_after_days: int = 90
    # Dedupe keys (handled inbox rows) are kept this long, far beyond WeCom's retries (seconds);
    # a signed callback older than this is refused, so pruning can never let a replay through.
    dedupe_keep_days: int = 7


@dataclass(frozen=True)
class SenderConfig:
    # WeCom drops silently beyond 30 a minute and 1,000 an hour per member: keep a margin.
    per_member_per_minute: int = 25
    per_member_per_hour: int = 900
    max_attempts: int = 8
    batch_size: int = 200
    # WeCom's ceilings for one API across the whole company are 10,000 a minute and 150,000 an hour.
    company_calls_per_minute: int = 9000
    company_calls_per_hour: int = 135000
    # The app may send account_limit x 200 person-times a day; warn the admins at this share of it.
    account_limit: int = 500
    daily_warning_percent: int = 80
    # After WeCom says the app is misconfigured, try again after this long, doubling up to the cap.
    pause_retry_seconds: int = 60
    pause_retry_max_seconds: int = 900



def read_wecom(w: SectionReader) -> WeComConfig:
    corp_id = w.get("corp_id", str, required=True)
    agent_id = w.get("agent_id", int, required=True)
    secret = w.get("secret", str, required=True)
    token = w.get("token", str, required=True)
    aes_key = w.get("encoding_aes_key", str, required=True)
    api_base_url = w.get("api_base_url", str, default=REAL_API_BASE_URL)
    request_timeout = w.get("request_timeout", float, default=5.0)
    dup_interval = w.get("duplicate_check_interval", int, default=3600)
    if corp_id is not None and not corp_id.strip():
        w.problem("corp_id", "empty")
    w.positive("agent_id", agent_id)
    for key, value in (("secret", secret), ("token", token)):
        if value is not None and not value.strip():
            w.problem(key, "empty_secret")
    if aes_key is not None and not _AES_KEY.fullmatch(aes_key):
        w.problem("encoding_aes_key", "not_an_aes_key")
    if api_base_url is not None:
        if not re.match(r"https?://[^/]+", api_base_url):
            w.problem("api_base_url", "not_a_url", got=repr(api_base_url))
        elif not api_base_url.endswith("/"):
            api_base_url += "/"
    w.positive("request_timeout", request_timeout, 60)
    if dup_interval is not None and not 60 <= dup_interval <= MAX_SHORTEST_DUPLICATE_WINDOW:
        w.problem("duplicate_check_interval", "between", range=f"60..{MAX_SHORTEST_DUPLICATE_WINDOW}", unit="seconds",
                  got=dup_interval)
    w.check_unknown()
    return WeComConfig(corp_id=corp_id, agent_id=agent_id, secret=Secret(secret), token=Secret(token),
                       encoding_aes_key=Secret(aes_key), api_base_url=api_base_url, request_timeout=request_timeout,
                       duplicate_check_interval=dup_interval)


def read_database(d: SectionReader, base_dir: Path | None) -> DatabaseConfig:
    db_url = d.get("url", str, default="sqlite:///kpibot.db")
    if db_url is not None:
        db_url = _resolve_sqlite_path(db_url, base_dir)
        try:
            make_url(db_url)
        except Exception:  # noqa: BLE001 - any parse failure is a config problem
            d.problem("url", "not_a_database_url")
    d.check_unknown()
    return DatabaseConfig(url=Secret(db_url))


def _resolve_sqlite_path(url: str, base_dir: Path | None) -> str:
    """A relative SQLite path is relative to the config file, not to wherever the process was started."""
    prefix = "sqlite:///"
    if base_dir is None or not url.startswith(prefix) or url == "sqlite:///:memory:":
        return url
    path = url[len(prefix):]
    if not path or path.startswith("/"):
        return url
    return prefix + str((base_dir / path).resolve())


def read_server(s: SectionReader) -> ServerConfig:
    host = s.get("host", str, default="127.0.0.1")
    port = s.get("port", int, default=8080)
    threads = s.get("threads", int, default=8)
    max_body = s.get("max_body_bytes", int, default=65536)
    if port is not None and not 0 <= port <= 65535:  # 0: any free port (tests, the sandbox)
        s.problem("port", "out_of_range", limit="0..65535", got=port)
    s.positive("threads", threads, 256)
    s.positive("max_body_bytes", max_body, 10 * 1024 * 1024)
    connection_limit = s.get("connection_limit", int, default=1000)
    channel_timeout = s.get("channel_timeout", int, default=30)
    request_deadline = s.get("request_timeout", int, default=10)
    max_header = s.get("max_header_bytes", int, default=16384)
    s.positive("connection_limit", connection_limit, 100_000)
    s.positive("channel_timeout", channel_timeout, 3600)
    s.positive("request_timeout", request_deadline, 3600)
    s.positive("max_header_bytes", max_header, 1024 * 1024)
    s.check_unknown()
    return ServerConfig(host=host, port=port, threads=threads, max_body_bytes=max_body,
                        connection_limit=connection_limit, channel_timeout=channel_timeout,
                        request_timeout=request_deadline, max_header_bytes=max_header)


def read_org(o: SectionReader) -> OrgConfig:
    admins = o.get("admins", list, default=[])
    departments = o.get("departments", list, default=[1])
    sync_at = o.time("sync_at", time(2, 40))
    if admins is not None and not all(isinstance(a, str) and a for a in admins):
        o.problem("admins", "not_strings", of="admins")
        admins = []
    departments = o.department_ids("departments", departments, [1])
    if departments == []:
        o.problem("departments", "no_department")
    o.check_unknown()
    return OrgConfig(admins=tuple(admins or ()), departments=tuple(departments or ()), sync_at=sync_at)


def read_schedule(sc: SectionReader, base_dir: Path | None) -> tuple[ScheduleConfig, CalendarFile | None]:
    """The [schedule] section, and the admin's calendar file it names when that file exists."""
    tz = sc.get("timezone", str, default="Asia/Shanghai")
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            sc.problem("timezone", "unknown_timezone", got=repr(tz))
    grace = sc.get("catch_up_grace_hours", int, default=12)
    if grace is not None and not 0 <= grace <= 24 * 7:
        sc.problem("catch_up_grace_hours", "between", range="0..168", unit="hours", got=grace)
    tick = sc.get("tick_seconds", float, default=15.0)
    if tick is not None and not 0.05 <= tick <= 60:
        sc.problem("tick_seconds", "between", range="0.05..60", unit="seconds", got=tick)
    calendar_file, calendar = _calendar_file(sc, sc.get("calendar_file", str, default=DEFAULT_CALENDAR_FILE) or
                                             DEFAULT_CALENDAR_FILE, base_dir)
    sc.check_unknown()
    return ScheduleConfig(timezone=tz, catch_up_grace_hours=grace, tick_seconds=tick,
                          calendar_file=calendar_file), calendar


def _calendar_file(reader: SectionReader, name: str, base_dir: Path | None) -> tuple[Path, CalendarFile | None]:
    """The holiday file for years chinese-calendar lacks, relative to the config file. A missing file is no
    data (the calendar_warning job and `kpibot calendar show` name where it is expected); its problems are
    config problems."""
    path = Path(name)
    if not path.is_absolute():
        if base_dir is None:  # a config built in code (tests): no file beside it
            return path, None
        path = (base_dir / path).resolve()
    if not path.exists():
        return path, None
    try:
        return path, load_calendar_file(path)
    except CalendarFileError as error:
        reader.problems.extend(error.problems)
        return path, None


def read_bot(b: SectionReader) -> BotConfig:
    locale = b.get("locale", str, default="zh_CN")
    timeout = b.get("conversation_timeout_minutes", int, default=30)
    workers = b.get("inbox_workers", int, default=4)
    text_fallback = b.get("text_fallback", bool, default=True)
    wechat_users = b.strings("wechat_users", [])
    welcome_days = b.get("welcome_again_after_days", int, default=90)
    dedupe_keep_days = b.get("dedupe_keep_days", int, default=7)
    if locale is not None and not (TEMPLATE_ROOT / locale).is_dir():
        b.problem("locale", "no_templates", locale=repr(locale), folder=str(TEMPLATE_ROOT / locale))
    b.positive("conversation_timeout_minutes", timeout, 7 * 24 * 60)
    b.positive("inbox_workers", workers, 64)
    b.positive("welcome_again_after_days", welcome_days, 3650)
    if dedupe_keep_days is not None and not 7 <= dedupe_keep_days <= 3650:
        b.problem("dedupe_keep_days", "between", range="7..3650", unit="days", got=dedupe_keep_days)
    b.check_unknown()
    return BotConfig(locale=locale, conversation_timeout_minutes=timeout, inbox_workers=workers,
                     text_fallback=bool(text_fallback), wechat_users=wechat_users,
                     welcome_again_after_days=welcome_days or 90, dedupe_keep_days=dedupe_keep_days)


def read_sender(se: SectionReader) -> SenderConfig:
    per_minute = se.get("per_member_per_minute", int, default=25)
    per_hour = se.get("per_member_per_hour", int, default=900)
    attempts = se.get("max_attempts", int, default=8)
    batch = se.get("batch_size", int, default=200)
    company_minute = se.get("company_calls_per_minute", int, default=9000)
    company_hour = se.get("company_calls_per_hour", int, default=135000)
    account_limit = se.get("account_limit", int, default=500)
    warning_percent = se.get("daily_warning_percent", int, default=80)
    pause_retry = se.get("pause_retry_seconds", int, default=60)
    pause_retry_max = se.get("pause_retry_max_seconds", int, default=900)
    se.positive("per_member_per_minute", per_minute, 30)
    se.positive("per_member_per_hour", per_hour, 1000)
    se.positive("max_attempts", attempts, 100)
    se.positive("batch_size", batch, 5000)
    se.positive("company_calls_per_minute", company_minute, 10000)
    se.positive("company_calls_per_hour", company_hour, 150000)
    se.positive("account_limit", account_limit, 10_000_000)
    se.positive("daily_warning_percent", warning_percent, 100)
    se.positive("pause_retry_seconds", pause_retry, 3600)
    se.positive("pause_retry_max_seconds", pause_retry_max, 24 * 3600)
    if pause_retry and pause_retry_max and pause_retry_max < pause_retry:
        se.problem("pause_retry_max_seconds", "retry_cap_below_start", start=pause_retry)
    se.check_unknown()
    return SenderConfig(per_member_per_minute=per_minute, per_member_per_hour=per_hour, max_attempts=attempts,
                        batch_size=batch, company_calls_per_minute=company_minute,
                        company_calls_per_hour=company_hour, account_limit=account_limit,
                        daily_warning_percent=warning_percent, pause_retry_seconds=pause_retry,
                        pause_retry_max_seconds=pause_retry_max)
