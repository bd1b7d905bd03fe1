"""Configuration: config.toml (plus secrets from the environment) loaded into frozen, validated dataclasses."""
from __future__ import annotations

# Import from here. The modules below split the work by what each owns: the service's sections, the appraisal's,
# problems and their reader, the admin's calendar file, scheme files, and reading the whole.

from typing import Any

from bot.config.appraisal_sections import (DEADLINE_RULES, WEEKLY_PROMPT_RULES, AppraisalConfig, ReportQuestion,
                                           ResultsConfig, SchemeAssignment, SelfReviewConfig, WeComStatsConfig,
                                           WeeklyReportConfig, default_report_questions)
from bot.config.loading import ENV_OVERRIDES, Config, default_config_path, load_config, parse_config
from bot.config.problems import ConfigError, ConfigProblem
from bot.config.service_sections import (MAX_DUPLICATE_WINDOW, MAX_SHORTEST_DUPLICATE_WINDOW, REAL_API_BASE_URL,
                                         BotConfig, DatabaseConfig, OrgConfig, ScheduleConfig, Secret, SenderConfig,
                                         ServerConfig, WeComConfig)

__all__ = [
    "DEADLINE_RULES", "ENV_OVERRIDES", "MAX_DUPLICATE_WINDOW", "MAX_SHORTEST_DUPLICATE_WINDOW", "REAL_API_BASE_URL",
    "WEEKLY_PROMPT_RULES", "AppraisalConfig", "BotConfig", "Config", "ConfigError", "ConfigProblem", "DatabaseConfig",
    "OrgConfig", "ReportQuestion", "ResultsConfig", "ScheduleConfig", "SchemeAssignment", "Secret",
    "SelfReviewConfig", "SenderConfig", "ServerConfig", "WeComConfig", "WeComStatsConfig", "WeeklyReportConfig",
    "default_config_path", "default_report_questions", "load_config", "parse_config",
]


def __getattr__(name: str) -> Any:
    # DEFAULT_REPORT_QUESTIONS are read from the templates on first use, not at import (see
    # default_report_questions): `from bot.config import DEFAULT_REPORT_QUESTIONS` still works.
    if name == "DEFAULT_REPORT_QUESTIONS":
        return default_report_questions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
