"""Operator commands: init, db upgrade, outbox and jobs, each with one clear line on bad input."""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from sqlalchemy import select

from bot.cli.main import build_parser, main
from bot.clock import SystemClock
from bot.storage.db import make_engine, make_session_factory, transaction
from bot.storage.models import OutboxMessage
from bot.templates import render
from bot.wecom.outbox import Outgoing, enqueue

HELP_TEMPLATES = ("cli/help/main.txt.j2", "cli/help/ops.txt.j2", "cli/help/backup.txt.j2", "cli/help/calendar.txt.j2",
                  "cli/help/data.txt.j2", "cli/help/doctor.txt.j2", "cli/help/sandbox.txt.j2", "cli/help/scoring.txt.j2")


def _init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    config = tmp_path / "config.toml"
    assert main(["--config", str(config), "init"]) == 0
    assert "已根据示例写入配置文件" in capsys.readouterr().out
    return config


def test_init_writes_the_config_and_creates_the_database_and_is_idempotent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _init(tmp_path, capsys)
    assert (tmp_path / "kpibot.db").exists()  # the example's relative SQLite path, next to the config
    assert main(["--config", str(config), "init"]) == 0
    assert "已存在，未改动" in capsys.readouterr().out
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert "已是最新" in capsys.readouterr().out


def test_commands_refuse_a_database_that_was_never_migrated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text((Path(__file__).resolve().parent.parent / "config.example.toml").read_text(encoding="utf-8"),
                      encoding="utf-8")
    assert main(["--config", str(config), "outbox"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kpibot db upgrade" in err[0]


def test_outbox_lists_failures_with_their_reason_and_retries_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _init(tmp_path, capsys)
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    sessions = make_session_factory(engine)
    now = SystemClock().now()
    with transaction(sessions) as session:
        enqueue(session, "k1", Outgoing.text("lina", "你好"), now)
        enqueue(session, "k2", Outgoing.text("ghost", "你好"), now)
        ghost = session.scalars(select(OutboxMessage).where(OutboxMessage.touser == "ghost")).one()
        ghost.status, ghost.attempts, ghost.last_error = "failed", 1, "81013 user & party & tag all invalid"
    assert main(["--config", str(config), "outbox", "--status", "failed"]) == 0
    out = capsys.readouterr().out
    assert "ghost" in out and "81013" in out and "lina" not in out
    assert main(["--config", str(config), "outbox", "--retry", str(ghost.id)]) == 0
    assert "重新排队 1 条" in capsys.readouterr().out
    with transaction(sessions) as session:
        assert session.get(OutboxMessage, ghost.id).status == "pending"
    assert main(["--config", str(config), "outbox", "--retry", "999"]) == 1
    engine.dispose()


def test_jobs_list_shows_each_job_with_its_next_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _init(tmp_path, capsys)
    assert main(["--config", str(config), "jobs", "list"]) == 0
    out = capsys.readouterr().out
    assert "org_sync" in out and "02:40" in out


def test_jobs_run_an_unknown_job_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _init(tmp_path, capsys)
    assert main(["--config", str(config), "jobs", "run", "no_such_job"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "org_sync" in err[0]


def test_jobs_run_with_a_bad_time_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _init(tmp_path, capsys)
    assert main(["--config", str(config), "jobs", "run", "org_sync", "--at", "tomorrow"]) == 2
    assert "--at" in capsys.readouterr().err


def _subcommands(parser: argparse.ArgumentParser, path: str = "kpibot") -> Iterator[tuple[str, str | None]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", helps.get(name)
                yield from _subcommands(sub, f"{path} {name}")


def test_every_command_and_subcommand_has_its_help_text_from_the_templates() -> None:
    helps = dict(_subcommands(build_parser()))
    assert [command for command, text in helps.items() if not text] == []
    assert helps["kpibot serve"] == render("cli/help/ops.txt.j2", key="serve") == "启动回调服务、消息处理、发送与定时任务"
    assert helps["kpibot db backup"].startswith("在线备份 SQLite 数据库到 FILE")
    assert build_parser().description == "kpibot: 企业微信绩效考核机器人"


@pytest.mark.parametrize("template", HELP_TEMPLATES)
def test_a_help_template_fails_loudly_on_a_key_it_does_not_have(template: str) -> None:
    with pytest.raises(jinja2.UndefinedError):
        render(template, key="no-such-option", default="")
