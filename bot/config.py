"""Configuration: config.toml (plus secrets from the environment) loaded into frozen, validated dataclasses."""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REAL_API_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
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
    duplicate_check_interval: int = 300


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


@dataclass(frozen=True)
class OrgConfig:
    admins: tuple[str, ...] = ()
    departments: tuple[int, ...] = (1,)
    sync_at: time = time(2, 40)


@dataclass(frozen=True)
class ScheduleConfig:
    timezone: str = "Asia/Shanghai"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class BotConfig:
    locale: str = "zh_CN"
    conversation_timeout_minutes: int = 30
    inbox_workers: int = 4


@dataclass(frozen=True)
class SenderConfig:
    per_member_per_minute: int = 30
    per_member_per_hour: int = 1000
    max_attempts: int = 8
    batch_size: int = 200


@dataclass(frozen=True)
class Config:
    wecom: WeComConfig
    database: DatabaseConfig
    server: ServerConfig = field(default_factory=ServerConfig)
    org: OrgConfig = field(default_factory=OrgConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    sender: SenderConfig = field(default_factory=SenderConfig)
    source: Path | None = None


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
        self.problems.append(ConfigProblem(f"{self.prefix}.{key}", message))

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
    known_sections = {"wecom", "database", "server", "org", "schedule", "bot", "sender"}
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
    dup_interval = w.get("duplicate_check_interval", int, default=300)
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
    if dup_interval is not None and not 1 <= dup_interval <= 14400:
        w.problem("duplicate_check_interval", f"应在 1..14400 秒之间 (got {dup_interval})")
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
    sc.check_unknown()

    b = _table(merged, "bot", problems)
    locale = b.get("locale", str, default="zh_CN")
    timeout = b.get("conversation_timeout_minutes", int, default=30)
    workers = b.get("inbox_workers", int, default=4)
    if locale is not None:
        from bot.templates import TEMPLATE_ROOT
        if not (TEMPLATE_ROOT / locale).is_dir():
            b.problem("locale", f"没有 {locale!r} 的消息模板")
    _positive(b, "conversation_timeout_minutes", timeout, 7 * 24 * 60)
    _positive(b, "inbox_workers", workers, 64)
    b.check_unknown()

    se = _table(merged, "sender", problems)
    per_minute = se.get("per_member_per_minute", int, default=30)
    per_hour = se.get("per_member_per_hour", int, default=1000)
    attempts = se.get("max_attempts", int, default=8)
    batch = se.get("batch_size", int, default=200)
    _positive(se, "per_member_per_minute", per_minute, 30)
    _positive(se, "per_member_per_hour", per_hour, 1000)
    _positive(se, "max_attempts", attempts, 100)
    _positive(se, "batch_size", batch, 5000)
    se.check_unknown()

    if problems:
        raise ConfigError(problems, source)
    return Config(
        wecom=WeComConfig(corp_id=corp_id, agent_id=agent_id, secret=Secret(secret), token=Secret(token),
                          encoding_aes_key=Secret(aes_key), api_base_url=api_base_url,
                          request_timeout=request_timeout, duplicate_check_interval=dup_interval),
        database=DatabaseConfig(url=Secret(db_url)),
        server=ServerConfig(host=host, port=port, threads=threads, max_body_bytes=max_body),
        org=OrgConfig(admins=tuple(admins), departments=tuple(departments), sync_at=sync_at),
        schedule=ScheduleConfig(timezone=tz),
        bot=BotConfig(locale=locale, conversation_timeout_minutes=timeout, inbox_workers=workers),
        sender=SenderConfig(per_member_per_minute=per_minute, per_member_per_hour=per_hour,
                            max_attempts=attempts, batch_size=batch),
        source=source,
    )


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
