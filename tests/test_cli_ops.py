"""Operator commands: init, db upgrade, outbox and jobs, each with one clear line on bad input."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli.main import main
from bot.clock import SystemClock
from bot.storage.db import make_engine, make_session_factory, transaction
from bot.storage.models import OutboxMessage
from bot.wecom.outbox import Outgoing, enqueue


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
