"""The whole config (Config) and how it is read: config.toml, secrets from the environment, every problem at once."""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.appraisal_sections import (AppraisalConfig, ResultsConfig, SelfReviewConfig, WeComStatsConfig,
                                           WeeklyReportConfig, read_appraisal, read_results, read_self_review,
                                           read_wecom_stats, read_weekly_report)
from bot.config.calendar_file import CalendarFile
from bot.config.problems import ConfigError, ConfigProblem, SectionReader, problem_text
from bot.config.service_sections import (BotConfig, DatabaseConfig, OrgConfig, ScheduleConfig, SenderConfig,
                                         ServerConfig, WeComConfig, read_bot, read_database, read_org, read_schedule,
                                         read_sender, read_server, read_wecom)

ENV_OVERRIDES = {
    "KPIBOT_WECOM_SECRET": ("wecom", "secret"),
    "KPIBOT_WECOM_TOKEN": ("wecom", "token"),
    "KPIBOT_WECOM_AES_KEY": ("wecom", "encoding_aes_key"),
    "KPIBOT_DATABASE_URL": ("database", "url"),
}
SECTIONS = ("wecom", "database", "server", "org", "schedule", "bot", "sender", "weekly_report", "self_review",
            "appraisal", "wecom_stats", "results")


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
    problems: list[ConfigProblem] = [ConfigProblem(name, problem_text("unknown_section"))
                                     for name in merged if name not in SECTIONS]

    def section(name: str) -> SectionReader:
        return SectionReader.of(merged, name, problems)

    wecom = read_wecom(section("wecom"))
    database = read_database(section("database"), base_dir)
    server = read_server(section("server"))
    org = read_org(section("org"))
    schedule, calendar = read_schedule(section("schedule"), base_dir)
    bot = read_bot(section("bot"))
    sender = read_sender(section("sender"))
    weekly_report = read_weekly_report(section("weekly_report"))
    self_review = read_self_review(section("self_review"))
    appraisal = read_appraisal(section("appraisal"), base_dir)
    wecom_stats = read_wecom_stats(section("wecom_stats"))
    results = read_results(section("results"))
    if problems:
        raise ConfigError(problems, source)
    return Config(wecom=wecom, database=database, server=server, org=org, schedule=schedule, bot=bot, sender=sender,
                  weekly_report=weekly_report, self_review=self_review, appraisal=appraisal, wecom_stats=wecom_stats,
                  results=results, source=source, calendar=calendar)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("KPIBOT_CONFIG", "config.toml"))


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate config.toml; a missing or unreadable file is a ConfigError too."""
    config_path = Path(path) if path is not None else default_config_path(environ)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("config", problem_text("no_config_file", path=str(config_path)))]) from None
    except OSError as error:
        raise ConfigError([ConfigProblem("config", problem_text("config_unreadable", path=str(config_path),
                                                                reason=error.strerror))]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([ConfigProblem("config", problem_text("toml", reason=str(error)))], config_path) from None
    return parse_config(raw, environ, source=config_path, base_dir=config_path.resolve().parent)
