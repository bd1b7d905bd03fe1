"""Config loading: defaults, environment secrets, every problem reported at once, secrets never shown."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import DEFAULT_REPORT_QUESTIONS, ConfigError, default_report_questions, load_config, parse_config
from bot.templates import render, words

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def test_the_example_config_is_valid_and_documents_every_key() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.wecom.agent_id == 1000002
    assert config.wecom.api_base_url == "https://qyapi.weixin.qq.com/cgi-bin/"
    assert config.schedule.timezone == "Asia/Shanghai"
    assert config.database.url.reveal().startswith("sqlite:///")
    # the relative SQLite path is resolved next to the config file, not the working directory
    assert config.database.url.reveal().endswith(str(EXAMPLE.parent / "kpibot.db"))
    text = EXAMPLE.read_text(encoding="utf-8")
    for section, fields in {
        "wecom": config.wecom, "server": config.server, "org": config.org, "bot": config.bot,
        "sender": config.sender,
    }.items():
        for name in fields.__dataclass_fields__:
            assert f"\n{name} = " in text, f"config.example.toml does not document {section}.{name}"


def test_secrets_come_from_the_environment_and_never_show() -> None:
    raw = {"wecom": {"corp_id": "ww1", "agent_id": 1, "secret": "", "token": "",
                     "encoding_aes_key": "x" * 43}}
    config = parse_config(raw, environ={
        "KPIBOT_WECOM_SECRET": "s3cr3t-value", "KPIBOT_WECOM_TOKEN": "tok-value",
        "KPIBOT_WECOM_AES_KEY": "A" * 43, "KPIBOT_DATABASE_URL": "postgresql+psycopg://u:pw-value@h/db"})
    assert config.wecom.secret.reveal() == "s3cr3t-value"
    assert config.wecom.encoding_aes_key.reveal() == "A" * 43
    shown = repr(config) + str(config)
    for secret in ("s3cr3t-value", "tok-value", "A" * 43, "pw-value"):
        assert secret not in shown


def test_every_problem_is_reported_at_once_with_its_key_path() -> None:
    raw = {
        "wecom": {"corp_id": "", "agent_id": "x", "secret": "s", "token": "t", "encoding_aes_key": "short",
                  "api_base_url": "ftp://nowhere", "colour": "blue"},
        "server": {"port": 70000},
        "org": {"admins": [1], "departments": []},
        "schedule": {"timezone": "Mars/Olympus"},
        "extra": {},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ={})
    keys = {problem.key for problem in caught.value.problems}
    assert keys == {"wecom.corp_id", "wecom.agent_id", "wecom.encoding_aes_key", "wecom.api_base_url",
                    "wecom.colour", "server.port", "org.admins", "org.departments", "schedule.timezone", "extra"}


def test_missing_required_keys_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({}, environ={})
    assert {p.key for p in caught.value.problems} == {
        "wecom.corp_id", "wecom.agent_id", "wecom.secret", "wecom.token", "wecom.encoding_aes_key"}


def test_cli_with_a_missing_config_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--config", str(tmp_path / "nope.toml"), "org", "sync"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "找不到配置文件" in err


def test_cli_with_an_invalid_config_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[wecom]\ncorp_id = "ww1"\nagent_id = "abc"\n', encoding="utf-8")
    code = main(["--config", str(path), "outbox"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "wecom.agent_id" in err and "wecom.secret" in err


def test_cli_with_broken_toml_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[wecom\n", encoding="utf-8")
    assert main(["--config", str(path), "serve"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "TOML" in err


def test_a_scheme_with_errors_stops_start_up_with_its_problems_listed(tmp_path: Path) -> None:
    scheme = tmp_path / "bad.toml"
    scheme.write_text('[scheme]\nkey = "bad"\nname = "坏方案"\n\n[[indicators]]\nkey = "a"\nname = "指标A"\n'
                      'dimension = "performance"\nweight = 90\ncycle = "month"\nsource = "manual"\n'
                      'rule = { type = "ratio" }\ntarget = 10\n', encoding="utf-8")
    raw = {"wecom": {"corp_id": "ww1", "agent_id": 1, "secret": "s", "token": "t", "encoding_aes_key": "x" * 43},
           "appraisal": {"default_scheme": str(scheme)}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ={})
    (problem,) = caught.value.problems
    assert problem.key == "appraisal.default_scheme"
    assert "权重合计为 90，应为 100" in problem.message and "行为指标权重合计为 0" in problem.message


def test_problem_texts_are_the_config_templates_branches() -> None:
    assert render("config/problem.txt.j2", code="between", range="0..10", unit=None, got=11) == "应在 0..10 之间 (got 11)"
    assert render("config/problem.txt.j2", code="between", range="7..3650", unit="days", got=1) == \
        "应在 7..3650 天之间 (got 1)"
    assert render("config/problem.txt.j2", code="wrong_kind", kind="int", got="True") == "应为整数 (got True)"


def test_the_default_report_questions_are_the_locales_texts_and_words() -> None:
    questions = default_report_questions()
    assert [(q.key, q.required) for q in questions] == [
        ("key_actions", True), ("results", True), ("kr_progress", False), ("blockers", False), ("next_week", True)]
    assert questions[0].title == render("config/report_questions.txt.j2", key="key_actions", part="title") == "本周关键动作"
    assert questions[4].hint == "下周要做的关键动作"
    assert questions[0].aliases == words("config.key_actions") == ("关键动作", "本周工作", "本周完成")
    raw = {"wecom": {"corp_id": "ww1", "agent_id": 1, "secret": "s", "token": "t", "encoding_aes_key": "x" * 43}}
    assert parse_config(raw, environ={}).weekly_report.questions == questions == DEFAULT_REPORT_QUESTIONS
