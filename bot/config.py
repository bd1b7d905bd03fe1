"""Configuration: config.toml (plus secrets from the environment) loaded into frozen, validated dataclasses."""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from bot.appraisal.calendar_file import CalendarFile

REAL_API_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
# WeCom's duplicate-check window is at most 4 h. Rows get windows between the configured shortest one and
# that, one value per row of a member; 4 h hold at most 4 x 1,000 rows, so 4,001 values must remain.
MAX_DUPLICATE_WINDOW = 14400
MAX_SHORTEST_DUPLICATE_WINDOW = MAX_DUPLICATE_WINDOW - 4000
ENV_OVERRIDES = {
    "KPIBOT_WECOM_SECRET": ("wecom", "secret"),
    "KPIBOT_WECOM_TOKEN": ("wecom", "token"),
    "KPIBOT_WECOM_AES_KEY": ("wecom", "encoding_aes_key"),
    "KPIBOT_DATABASE_URL": ("database", "url"),
}
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


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


@dataclass(frozen=True)
class ReportQuestion:
    """One question of the weekly report; `aliases` are other headings that mean it in a pasted report."""

    key: str
    title: str
    hint: str = ""
    required: bool = True
    aliases: tuple[str, ...] = ()


DEFAULT_REPORT_QUESTIONS: tuple[ReportQuestion, ...] = (
    ReportQuestion("key_actions", "本周关键动作", "策划/执行的活动、访谈的用户、推进的事项……", True,
                   ("关键动作", "本周工作", "本周完成")),
    ReportQuestion("results", "结果与数据", "取得的结果和关键数据，最好与目标对比", True,
                   ("结果", "数据", "本周结果", "成果与数据")),
    ReportQuestion("kr_progress", "KR 进展", "个人关键结果（KR）的进展", False,
                   ("KR进展", "OKR进展", "OKR 进展", "KR")),
    ReportQuestion("blockers", "问题与需要的支持", "遇到的问题、风险，需要谁提供什么支持", False,
                   ("问题", "需要的支持", "问题与支持", "困难与支持", "风险与问题")),
    ReportQuestion("next_week", "下周计划", "下周要做的关键动作", True,
                   ("下周工作", "下周安排", "下周重点")),
)

WEEKLY_PROMPT_RULES = ("last_workday",) + tuple(f"last_workday_before_{d}" for d in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
DEADLINE_RULES = ("next_workday", "same_day")


@dataclass(frozen=True)
class WeeklyReportConfig:
    questions: tuple[ReportQuestion, ...] = DEFAULT_REPORT_QUESTIONS
    # Which day of each ISO week the prompt goes out (see config.example.toml).
    prompt_on: str = "last_workday"
    prompt_at: time = time(16, 5)
    # The deadline is on the prompt day ("same_day") or on the next workday ("next_workday").
    deadline: str = "next_workday"
    deadline_at: time = time(10, 0)
    # Reminder and escalation run on the deadline day.
    reminder_at: time = time(9, 5)
    escalation_at: time = time(10, 5)
    # Questions quoted in the manager's digest, and how many characters of each.
    digest_keys: tuple[str, ...] = ("key_actions", "blockers")
    digest_chars: int = 120

    def question(self, key: str) -> ReportQuestion:
        for question in self.questions:
            if question.key == key:
                return question
        raise KeyError(key)


@dataclass(frozen=True)
class SelfReviewConfig:
    # Workdays counted back from the month's end: 1 = its last workday, 2 = the one before.
    prompt_on: int = 2
    prompt_at: time = time(10, 5)
    reminder_on: int = 1
    reminder_at: time = time(15, 5)
    # Until this workday of the next month, /review still opens last month's review when it is unsubmitted.
    open_until_workday: int = 3


@dataclass(frozen=True)
class SchemeAssignment:
    scheme: str
    departments: tuple[int, ...] = ()
    userids: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppraisalConfig:
    default_scheme: str = "seed-executor"
    assign: tuple[SchemeAssignment, ...] = ()


@dataclass(frozen=True)
class WeComStatsConfig:
    """The nightly pull of WeCom's customer-contact statistics (see docs/data-sources.md)."""

    enabled: bool = True
    # Local time of the daily pull of yesterday's figures; WeCom advises against hh:00 and hh:30.
    sync_at: time = time(7, 20)
    # Days before yesterday pulled again each night, because WeCom may still correct them.
    repull_days: int = 3
    # Departments whose members are pulled (sub-departments included); empty: every appraised member.
    departments: tuple[int, ...] = ()
    # Parallel API calls during a pull.
    concurrency: int = 4


@dataclass(frozen=True)
class ResultsConfig:
    """Month close and publication of results (see config.example.toml [results])."""

    # The month closes on this workday of the next month, after the review window ...
    close_on_workday: int = 5
    close_at: time = time(10, 5)
    # ... and is published (calibration ends) on this workday of the next month.
    publish_on_workday: int = 7
    publish_at: time = time(10, 5)
    # The data-quality check flags a value that moved more than this many percent from the month before.
    jump_percent: int = 50
    # Totals under this line are listed in the manager's team summary ("below the line").
    pass_line: int = 60
    # How many earlier published months /result shows as history.
    history_months: int = 6
    # The first month the company appraised with kpibot ("2026-07"; "" = no such limit): quarters and years
    # are scored from it on, and the months before it are not missing.
    start_month: str = ""
    # Managers get what is still open in their team this many workdays before the month closes (0 = never).
    nudge_workdays_before: int = 2
    nudge_at: time = time(10, 35)


@dataclass(frozen=True)
class Config:
    wecom: WeComConfig
    database: DatabaseConfig
    server: ServerConfig = field(default_factory=ServerConfig)
    org: OrgConfig = field(default_factory=OrgConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    sender: SenderConfig = field(default_factory=SenderConfig)
    weekly_report: WeeklyReportConfig = field(default_factory=WeeklyReportConfig)
    self_review: SelfReviewConfig = field(default_factory=SelfReviewConfig)
    appraisal: AppraisalConfig = field(default_factory=AppraisalConfig)
    wecom_stats: WeComStatsConfig = field(default_factory=WeComStatsConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    source: Path | None = None
    calendar: CalendarFile | None = None  # what schedule.calendar_file says, when it exists


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """Every problem found in a config, reported at once."""

    def __init__(self, problems: list[ConfigProblem], source: Path | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(str(p) for p in problems))


class _Reader:
    """Reads typed values from one TOML table, collecting problems instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any], prefix: str, problems: list[ConfigProblem]) -> None:
        self.data = data
        self.prefix = prefix
        self.problems = problems
        self.seen: set[str] = set()

    def problem(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(f"{self.prefix}.{key}" if key else self.prefix, message))

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., required: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.problem(key, "必填项缺失 (required)")
            return None if default is ... else default
        value = self.data[key]
        if isinstance(value, bool) and kind in (int, float):
            self.problem(key, f"应为{_KIND_NAMES.get(kind, kind)} (got {value!r})")
            return default if default is not ... else None
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            self.problem(key, f"应为{_KIND_NAMES.get(kind, kind)} (got {type(value).__name__})")
            return default if default is not ... else None
        return value

    def check_unknown(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.problem(key, "未知配置项 (unknown key)")


_KIND_NAMES = {str: "字符串", int: "整数", float: "数字", list: "列表", bool: "布尔值"}


def _table(raw: Mapping[str, Any], name: str, problems: list[ConfigProblem]) -> _Reader:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        problems.append(ConfigProblem(name, "应为表 [section]"))
        value = {}
    return _Reader(value, name, problems)


def _positive(reader: _Reader, key: str, value: int | float | None, upper: int | None = None) -> None:
    if value is None:
        return
    if value <= 0 or (upper is not None and value > upper):
        limit = f"1..{upper}" if upper else "> 0"
        reader.problem(key, f"超出范围 {limit} (got {value})")


def _parse_time(reader: _Reader, key: str, default: time) -> time:
    text = reader.get(key, str, default=None)
    if text is None:
        return default
    match = _HH_MM.fullmatch(text)
    if not match:
        reader.problem(key, f"应为 HH:MM 时间 (got {text!r})")
        return default
    return time(int(match.group(1)), int(match.group(2)))


def parse_config(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                 source: Path | None = None, base_dir: Path | None = None) -> Config:
    """Build a Config from parsed TOML, applying environment overrides; raise ConfigError with every problem."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {name: dict(value) if isinstance(value, dict) else value for name, value in raw.items()}
    for variable, (section, key) in ENV_OVERRIDES.items():
        if environ.get(variable):
            table = merged.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = environ[variable]
    problems: list[ConfigProblem] = []
    known_sections = {"wecom", "database", "server", "org", "schedule", "bot", "sender", "weekly_report",
                      "self_review", "appraisal", "wecom_stats", "results"}
    for name in merged:
        if name not in known_sections:
            problems.append(ConfigProblem(name, "未知配置段 (unknown section)"))

    w = _table(merged, "wecom", problems)
    corp_id = w.get("corp_id", str, required=True)
    agent_id = w.get("agent_id", int, required=True)
    secret = w.get("secret", str, required=True)
    token = w.get("token", str, required=True)
    aes_key = w.get("encoding_aes_key", str, required=True)
    api_base_url = w.get("api_base_url", str, default=REAL_API_BASE_URL)
    request_timeout = w.get("request_timeout", float, default=5.0)
    dup_interval = w.get("duplicate_check_interval", int, default=3600)
    if corp_id is not None and not corp_id.strip():
        w.problem("corp_id", "不能为空")
    _positive(w, "agent_id", agent_id)
    for key, value in (("secret", secret), ("token", token)):
        if value is not None and not value.strip():
            w.problem(key, "不能为空 (可用环境变量提供)")
    if aes_key is not None and not _AES_KEY.fullmatch(aes_key):
        w.problem("encoding_aes_key", "应为 43 位字母或数字 (EncodingAESKey)")
    if api_base_url is not None:
        if not re.match(r"https?://[^/]+", api_base_url):
            w.problem("api_base_url", f"应为 http(s) 地址 (got {api_base_url!r})")
        elif not api_base_url.endswith("/"):
            api_base_url += "/"
    _positive(w, "request_timeout", request_timeout, 60)
    if dup_interval is not None and not 60 <= dup_interval <= MAX_SHORTEST_DUPLICATE_WINDOW:
        w.problem("duplicate_check_interval", f"应在 60..{MAX_SHORTEST_DUPLICATE_WINDOW} 秒之间 (got {dup_interval})")
    w.check_unknown()

    d = _table(merged, "database", problems)
    db_url = d.get("url", str, default="sqlite:///kpibot.db")
    if db_url is not None:
        db_url = _resolve_sqlite_path(db_url, base_dir)
        try:
            from sqlalchemy.engine import make_url
            make_url(db_url)
        except Exception:  # noqa: BLE001 - any parse failure is a config problem
            d.problem("url", "不是有效的数据库地址")
    d.check_unknown()

    s = _table(merged, "server", problems)
    host = s.get("host", str, default="127.0.0.1")
    port = s.get("port", int, default=8080)
    threads = s.get("threads", int, default=8)
    max_body = s.get("max_body_bytes", int, default=65536)
    if port is not None and not 0 <= port <= 65535:  # 0: any free port (tests, the sandbox)
        s.problem("port", f"超出范围 0..65535 (got {port})")
    _positive(s, "threads", threads, 256)
    _positive(s, "max_body_bytes", max_body, 10 * 1024 * 1024)
    connection_limit = s.get("connection_limit", int, default=1000)
    channel_timeout = s.get("channel_timeout", int, default=30)
    request_deadline = s.get("request_timeout", int, default=10)
    max_header = s.get("max_header_bytes", int, default=16384)
    _positive(s, "connection_limit", connection_limit, 100_000)
    _positive(s, "channel_timeout", channel_timeout, 3600)
    _positive(s, "request_timeout", request_deadline, 3600)
    _positive(s, "max_header_bytes", max_header, 1024 * 1024)
    s.check_unknown()

    o = _table(merged, "org", problems)
    admins = o.get("admins", list, default=[])
    departments = o.get("departments", list, default=[1])
    sync_at = _parse_time(o, "sync_at", time(2, 40))
    if admins is not None and not all(isinstance(a, str) and a for a in admins):
        o.problem("admins", "应为 userid 字符串列表")
        admins = []
    if departments is not None and not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in departments):
        o.problem("departments", "应为部门 id (正整数) 列表")
        departments = [1]
    if departments == []:
        o.problem("departments", "至少需要一个部门 id")
    o.check_unknown()

    sc = _table(merged, "schedule", problems)
    tz = sc.get("timezone", str, default="Asia/Shanghai")
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            sc.problem("timezone", f"未知时区 {tz!r}")
    grace = sc.get("catch_up_grace_hours", int, default=12)
    if grace is not None and not 0 <= grace <= 24 * 7:
        sc.problem("catch_up_grace_hours", f"应在 0..168 小时之间 (got {grace})")
    tick = sc.get("tick_seconds", float, default=15.0)
    if tick is not None and not 0.05 <= tick <= 60:
        sc.problem("tick_seconds", f"应在 0.05..60 秒之间 (got {tick})")
    calendar_file, calendar = _calendar_file(sc, sc.get("calendar_file", str, default=DEFAULT_CALENDAR_FILE) or
                                             DEFAULT_CALENDAR_FILE, base_dir)
    sc.check_unknown()

    b = _table(merged, "bot", problems)
    locale = b.get("locale", str, default="zh_CN")
    timeout = b.get("conversation_timeout_minutes", int, default=30)
    workers = b.get("inbox_workers", int, default=4)
    text_fallback = b.get("text_fallback", bool, default=True)
    wechat_users = _string_list(b, "wechat_users", b.get("wechat_users", list, default=[]), "userid")
    welcome_days = b.get("welcome_again_after_days", int, default=90)
    dedupe_keep_days = b.get("dedupe_keep_days", int, default=7)
    if locale is not None:
        from bot.templates import TEMPLATE_ROOT
        if not (TEMPLATE_ROOT / locale).is_dir():
            b.problem("locale", f"没有 {locale!r} 的消息模板 ({TEMPLATE_ROOT / locale})")
    _positive(b, "conversation_timeout_minutes", timeout, 7 * 24 * 60)
    _positive(b, "inbox_workers", workers, 64)
    _positive(b, "welcome_again_after_days", welcome_days, 3650)
    if dedupe_keep_days is not None and not 7 <= dedupe_keep_days <= 3650:
        b.problem("dedupe_keep_days", f"应在 7..3650 天之间 (got {dedupe_keep_days})")
    b.check_unknown()

    se = _table(merged, "sender", problems)
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
    _positive(se, "per_member_per_minute", per_minute, 30)
    _positive(se, "per_member_per_hour", per_hour, 1000)
    _positive(se, "max_attempts", attempts, 100)
    _positive(se, "batch_size", batch, 5000)
    _positive(se, "company_calls_per_minute", company_minute, 10000)
    _positive(se, "company_calls_per_hour", company_hour, 150000)
    _positive(se, "account_limit", account_limit, 10_000_000)
    _positive(se, "daily_warning_percent", warning_percent, 100)
    _positive(se, "pause_retry_seconds", pause_retry, 3600)
    _positive(se, "pause_retry_max_seconds", pause_retry_max, 24 * 3600)
    if pause_retry and pause_retry_max and pause_retry_max < pause_retry:
        se.problem("pause_retry_max_seconds", f"不能小于 pause_retry_seconds ({pause_retry})")
    se.check_unknown()

    weekly_report = _weekly_report(_table(merged, "weekly_report", problems))
    self_review = _self_review(_table(merged, "self_review", problems))
    appraisal = _appraisal(_table(merged, "appraisal", problems), base_dir)
    wecom_stats = _wecom_stats(_table(merged, "wecom_stats", problems))
    results = _results(_table(merged, "results", problems))

    if problems:
        raise ConfigError(problems, source)
    return Config(
        wecom=WeComConfig(corp_id=corp_id, agent_id=agent_id, secret=Secret(secret), token=Secret(token),
                          encoding_aes_key=Secret(aes_key), api_base_url=api_base_url,
                          request_timeout=request_timeout, duplicate_check_interval=dup_interval),
        database=DatabaseConfig(url=Secret(db_url)),
        server=ServerConfig(host=host, port=port, threads=threads, max_body_bytes=max_body,
                            connection_limit=connection_limit, channel_timeout=channel_timeout,
                            request_timeout=request_deadline, max_header_bytes=max_header),
        org=OrgConfig(admins=tuple(admins), departments=tuple(departments), sync_at=sync_at),
        schedule=ScheduleConfig(timezone=tz, catch_up_grace_hours=grace, tick_seconds=tick,
                                calendar_file=calendar_file),
        bot=BotConfig(locale=locale, conversation_timeout_minutes=timeout, inbox_workers=workers,
                      text_fallback=bool(text_fallback), wechat_users=wechat_users,
                      welcome_again_after_days=welcome_days or 90, dedupe_keep_days=dedupe_keep_days),
        sender=SenderConfig(per_member_per_minute=per_minute, per_member_per_hour=per_hour,
                            max_attempts=attempts, batch_size=batch, company_calls_per_minute=company_minute,
                            company_calls_per_hour=company_hour, account_limit=account_limit,
                            daily_warning_percent=warning_percent, pause_retry_seconds=pause_retry,
                            pause_retry_max_seconds=pause_retry_max),
        weekly_report=weekly_report,
        self_review=self_review,
        appraisal=appraisal,
        wecom_stats=wecom_stats,
        results=results,
        source=source,
        calendar=calendar,
    )


_QUESTION_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _string_list(reader: _Reader, key: str, value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        reader.problem(key, f"应为{what}字符串列表")
        return ()
    return tuple(item.strip() for item in value)


def _questions(reader: _Reader) -> tuple[ReportQuestion, ...]:
    raw = reader.get("questions", list, default=None)
    if raw is None:
        return DEFAULT_REPORT_QUESTIONS
    questions: list[ReportQuestion] = []
    seen: set[str] = set()
    if not raw:
        reader.problem("questions", "至少需要一个问题")
    for index, item in enumerate(raw):
        q = _Reader(item if isinstance(item, dict) else {}, f"{reader.prefix}.questions[{index}]", reader.problems)
        if not isinstance(item, dict):
            q.problem("", "应为表 {key, title, hint, required, aliases}")
            continue
        key = q.get("key", str, required=True)
        title = q.get("title", str, required=True)
        hint = q.get("hint", str, default="")
        required = q.get("required", bool, default=True)
        aliases = _string_list(q, "aliases", q.get("aliases", list, default=[]), "标题")
        q.check_unknown()
        if key is not None and not _QUESTION_KEY.fullmatch(key):
            q.problem("key", f"应为小写字母开头的 a-z0-9_ (got {key!r})")
        elif key in seen:
            q.problem("key", f"重复的问题 key {key!r}")
        if title is not None and not title.strip():
            q.problem("title", "不能为空")
        if key and title and title.strip():
            seen.add(key)
            questions.append(ReportQuestion(key, title.strip(), hint or "", bool(required), aliases))
    return tuple(questions) or DEFAULT_REPORT_QUESTIONS


def _weekly_report(r: _Reader) -> WeeklyReportConfig:
    defaults = WeeklyReportConfig()
    questions = _questions(r)
    prompt_on = r.get("prompt_on", str, default=defaults.prompt_on)
    if prompt_on not in WEEKLY_PROMPT_RULES:
        r.problem("prompt_on", f"应为 {' | '.join(WEEKLY_PROMPT_RULES[:2])} ... (got {prompt_on!r})")
        prompt_on = defaults.prompt_on
    prompt_at = _parse_time(r, "prompt_at", defaults.prompt_at)
    deadline = r.get("deadline", str, default=defaults.deadline)
    if deadline not in DEADLINE_RULES:
        r.problem("deadline", f"应为 {' | '.join(DEADLINE_RULES)} (got {deadline!r})")
        deadline = defaults.deadline
    deadline_at = _parse_time(r, "deadline_at", defaults.deadline_at)
    reminder_at = _parse_time(r, "reminder_at", defaults.reminder_at)
    escalation_at = _parse_time(r, "escalation_at", defaults.escalation_at)
    digest_keys = _string_list(r, "digest_keys", r.get("digest_keys", list, default=list(defaults.digest_keys)),
                               "问题 key ")
    digest_chars = r.get("digest_chars", int, default=defaults.digest_chars)
    _positive(r, "digest_chars", digest_chars, 1000)
    r.check_unknown()
    if not reminder_at < deadline_at:
        r.problem("reminder_at", f"提醒应早于截止时间 deadline_at {deadline_at:%H:%M}")
    if not deadline_at <= escalation_at:
        r.problem("escalation_at", f"上报应不早于截止时间 deadline_at {deadline_at:%H:%M}")
    if deadline == "same_day" and not prompt_at < reminder_at:
        r.problem("reminder_at", f"当天截止时，提醒应晚于提问时间 prompt_at {prompt_at:%H:%M}")
    keys = {q.key for q in questions}
    if "digest_keys" not in r.data:  # custom questions without digest_keys: quote those that still exist
        digest_keys = tuple(k for k in defaults.digest_keys if k in keys) or (questions[0].key,)
    for key in digest_keys:
        if key not in keys:
            r.problem("digest_keys", f"没有 key 为 {key!r} 的问题")
    return WeeklyReportConfig(questions=questions, prompt_on=prompt_on, prompt_at=prompt_at, deadline=deadline,
                              deadline_at=deadline_at, reminder_at=reminder_at, escalation_at=escalation_at,
                              digest_keys=tuple(k for k in digest_keys if k in keys),
                              digest_chars=digest_chars or defaults.digest_chars)


def _self_review(r: _Reader) -> SelfReviewConfig:
    defaults = SelfReviewConfig()
    prompt_on = r.get("prompt_on", int, default=defaults.prompt_on)
    prompt_at = _parse_time(r, "prompt_at", defaults.prompt_at)
    reminder_on = r.get("reminder_on", int, default=defaults.reminder_on)
    reminder_at = _parse_time(r, "reminder_at", defaults.reminder_at)
    open_until = r.get("open_until_workday", int, default=defaults.open_until_workday)
    r.check_unknown()
    _positive(r, "prompt_on", prompt_on, 10)
    _positive(r, "reminder_on", reminder_on, 10)
    _positive(r, "open_until_workday", open_until, 15)
    if isinstance(prompt_on, int) and isinstance(reminder_on, int):
        if reminder_on > prompt_on or (reminder_on == prompt_on and not prompt_at < reminder_at):
            r.problem("reminder_on", "提醒应在提问之后 (reminder_on ≤ prompt_on；同一天时 reminder_at 晚于 prompt_at)")
    return SelfReviewConfig(prompt_on=prompt_on or defaults.prompt_on, prompt_at=prompt_at,
                            reminder_on=reminder_on or defaults.reminder_on, reminder_at=reminder_at,
                            open_until_workday=open_until or defaults.open_until_workday)


def _scheme_name(reader: _Reader, key: str, value: str | None, base_dir: Path | None) -> str | None:
    """A preset name, or a scheme file (relative to the config file); checked by loading it."""
    if value is None:
        return None
    name = value.strip()
    looks_like_file = name.endswith(".toml") or "/" in name or "\\" in name
    if looks_like_file and base_dir is not None and not Path(name).is_absolute():
        name = str((base_dir / name).resolve())
    from bot.appraisal.schemes import SchemeLoadError, load_scheme
    try:
        load_scheme(name)
    except SchemeLoadError as error:
        # A scheme with errors stops the bot with the problems themselves, not just their count.
        from bot.templates import render
        errors = [render("cli/problem.txt.j2", problem=problem) for problem in error.problems
                  if problem.severity.value == "error"]
        reader.problem(key, f"无法使用考核方案 {value!r}: " + ("；".join(errors) if errors else str(error)))
    except Exception as error:  # noqa: BLE001 - any failure to load is one problem with this key
        reader.problem(key, f"无法使用考核方案 {value!r}: {error}")
    return name


def _appraisal(r: _Reader, base_dir: Path | None) -> AppraisalConfig:
    defaults = AppraisalConfig()
    default_scheme = _scheme_name(r, "default_scheme", r.get("default_scheme", str, default=defaults.default_scheme),
                                  base_dir)
    raw = r.get("assign", list, default=[])
    r.check_unknown()
    assignments: list[SchemeAssignment] = []
    for index, item in enumerate(raw or []):
        a = _Reader(item if isinstance(item, dict) else {}, f"{r.prefix}.assign[{index}]", r.problems)
        if not isinstance(item, dict):
            a.problem("", "应为表 {scheme, departments, userids}")
            continue
        scheme = _scheme_name(a, "scheme", a.get("scheme", str, required=True), base_dir)
        departments = a.get("departments", list, default=[])
        userids = _string_list(a, "userids", a.get("userids", list, default=[]), " userid ")
        a.check_unknown()
        if departments is not None and not all(isinstance(x, int) and not isinstance(x, bool) and x > 0
                                               for x in departments):
            a.problem("departments", "应为部门 id (正整数) 列表")
            departments = []
        if not departments and not userids:
            a.problem("", "至少需要 departments 或 userids 之一")
        if scheme:
            assignments.append(SchemeAssignment(scheme, tuple(departments or ()), userids))
    return AppraisalConfig(default_scheme=default_scheme or defaults.default_scheme, assign=tuple(assignments))


def _wecom_stats(r: _Reader) -> WeComStatsConfig:
    defaults = WeComStatsConfig()
    enabled = r.get("enabled", bool, default=defaults.enabled)
    sync_at = _parse_time(r, "sync_at", defaults.sync_at)
    repull_days = r.get("repull_days", int, default=defaults.repull_days)
    departments = r.get("departments", list, default=[])
    concurrency = r.get("concurrency", int, default=defaults.concurrency)
    r.check_unknown()
    if sync_at.minute in (0, 30):
        r.problem("sync_at", f"请避开整点和半点 (企业微信接口拥堵), 例如 {sync_at.hour:02d}:20 (got {sync_at:%H:%M})")
    if repull_days is not None and not 0 <= repull_days <= 29:
        r.problem("repull_days", f"应在 0..29 天之间 (一次最多拉取 30 天; got {repull_days})")
    if departments is not None and not all(isinstance(x, int) and not isinstance(x, bool) and x > 0
                                           for x in departments):
        r.problem("departments", "应为部门 id (正整数) 列表")
        departments = []
    _positive(r, "concurrency", concurrency, 32)
    return WeComStatsConfig(enabled=bool(enabled), sync_at=sync_at,
                            repull_days=defaults.repull_days if repull_days is None else repull_days,
                            departments=tuple(departments or ()), concurrency=concurrency or defaults.concurrency)


def _results(r: _Reader) -> ResultsConfig:
    defaults = ResultsConfig()
    close_on = r.get("close_on_workday", int, default=defaults.close_on_workday)
    close_at = _parse_time(r, "close_at", defaults.close_at)
    publish_on = r.get("publish_on_workday", int, default=defaults.publish_on_workday)
    publish_at = _parse_time(r, "publish_at", defaults.publish_at)
    jump = r.get("jump_percent", int, default=defaults.jump_percent)
    pass_line = r.get("pass_line", int, default=defaults.pass_line)
    history = r.get("history_months", int, default=defaults.history_months)
    start_month = r.get("start_month", str, default=defaults.start_month)
    nudge_before = r.get("nudge_workdays_before", int, default=defaults.nudge_workdays_before)
    nudge_at = _parse_time(r, "nudge_at", defaults.nudge_at)
    if start_month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", start_month):
        r.problem("start_month", f"应为 2026-07 这样的月份 (got {start_month!r})")
    if isinstance(nudge_before, int) and not 0 <= nudge_before <= 10:
        r.problem("nudge_workdays_before", f"应在 0..10 之间 (got {nudge_before})")
    r.check_unknown()
    _positive(r, "close_on_workday", close_on, 15)
    _positive(r, "publish_on_workday", publish_on, 20)
    _positive(r, "jump_percent", jump, 10000)
    _positive(r, "history_months", history, 36)
    if pass_line is not None and not 0 <= pass_line <= 120:
        r.problem("pass_line", f"应在 0..120 之间 (got {pass_line})")
    if isinstance(close_on, int) and isinstance(publish_on, int):
        if publish_on < close_on or (publish_on == close_on and not close_at < publish_at):
            r.problem("publish_on_workday", "发布应在结账之后 (publish_on_workday ≥ close_on_workday；同一天时 "
                                            "publish_at 晚于 close_at)，中间是主管校准的时间")
    return ResultsConfig(close_on_workday=close_on or defaults.close_on_workday, close_at=close_at,
                         publish_on_workday=publish_on or defaults.publish_on_workday, publish_at=publish_at,
                         jump_percent=jump or defaults.jump_percent,
                         pass_line=defaults.pass_line if pass_line is None else pass_line,
                         history_months=history or defaults.history_months, start_month=start_month or "",
                         nudge_workdays_before=defaults.nudge_workdays_before if nudge_before is None
                         else nudge_before, nudge_at=nudge_at)


DEFAULT_CALENDAR_FILE = "calendar.toml"


def _calendar_file(reader: _Reader, name: str, base_dir: Path | None) -> tuple[Path, CalendarFile | None]:
    """The holiday file for years chinese-calendar lacks, relative to the config file. A missing file is no
    data (the calendar_warning job and `kpibot calendar show` name where it is expected); its problems are
    config problems."""
    from bot.appraisal.calendar_file import CalendarFileError, load_calendar_file

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


def _resolve_sqlite_path(url: str, base_dir: Path | None) -> str:
    """A relative SQLite path is relative to the config file, not to wherever the process was started."""
    prefix = "sqlite:///"
    if base_dir is None or not url.startswith(prefix) or url == "sqlite:///:memory:":
        return url
    path = url[len(prefix):]
    if not path or path.startswith("/"):
        return url
    return prefix + str((base_dir / path).resolve())


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("KPIBOT_CONFIG", "config.toml"))


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate config.toml; a missing or unreadable file is a ConfigError too."""
    config_path = Path(path) if path is not None else default_config_path(environ)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("config", f"找不到配置文件 {config_path} (先运行 kpibot init)")]) from None
    except OSError as error:
        raise ConfigError([ConfigProblem("config", f"无法读取 {config_path}: {error.strerror}")]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([ConfigProblem("config", f"TOML 语法错误: {error}")], config_path) from None
    return parse_config(raw, environ, source=config_path, base_dir=config_path.resolve().parent)
