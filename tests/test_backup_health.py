"""kpibot db backup / restore (SQLite online backup; server tools' commands), /healthz and /metrics."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from bot.cli.main import main
from bot.clock import SystemClock
from bot.storage.db import make_engine, make_session_factory, transaction
from bot.storage.models import OutboxMessage
from bot.wecom.outbox import Outgoing, enqueue
from bot.templates import render
from tests.harness import BotEnv

# Straight to the local server: an HTTP(S)_PROXY in the environment must not reroute these.
LOOPBACK = requests.Session()
LOOPBACK.trust_env = False
EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def _init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    config = tmp_path / "config.toml"
    assert main(["--config", str(config), "init"]) == 0
    capsys.readouterr()
    return config


def _recipients(tmp_path: Path) -> list[str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    try:
        with transaction(make_session_factory(engine)) as session:
            return sorted(session.scalars(select(OutboxMessage.touser)))
    finally:
        engine.dispose()


def _enqueue(tmp_path: Path, *users: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    try:
        with transaction(make_session_factory(engine)) as session:
            for user in users:
                enqueue(session, f"k:{user}", Outgoing.text(user, "你好"), SystemClock().now())
    finally:
        engine.dispose()


def test_backup_then_restore_brings_back_exactly_what_was_backed_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _init(tmp_path, capsys)
    _enqueue(tmp_path, "lina", "zhangwei")
    backup = tmp_path / "backup.db"
    # A second connection holds the database open, as a running bot does: the online backup still works.
    live = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    with live.connect():
        assert main(["--config", str(config), "db", "backup", str(backup)]) == 0
    live.dispose()
    out = capsys.readouterr().out
    assert f"已备份数据库到 {backup}" in out and "kpibot db restore" in out
    _enqueue(tmp_path, "after-backup")
    assert _recipients(tmp_path) == ["after-backup", "lina", "zhangwei"]

    assert main(["--config", str(config), "db", "restore", str(backup)]) == 0
    assert "已从" in capsys.readouterr().out
    assert _recipients(tmp_path) == ["lina", "zhangwei"]
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert "已是最新" in capsys.readouterr().out


def test_backup_never_overwrites_and_restore_refuses_what_is_not_a_backup(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _init(tmp_path, capsys)
    existing = tmp_path / "old.db"
    existing.write_bytes(b"keep me")
    assert main(["--config", str(config), "db", "backup", str(existing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "已存在" in err[0]
    assert existing.read_bytes() == b"keep me"
    assert main(["--config", str(config), "db", "restore", str(existing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "不是 kpibot 的 SQLite 备份" in err[0]
    assert main(["--config", str(config), "db", "restore", str(tmp_path / "nowhere.db")]) == 2
    assert "找不到备份文件" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "tool", "server"), [
    ("postgresql+psycopg://kpibot:s3cret-pw@db.internal:5433/kpi", "pg_dump --format=custom", "PostgreSQL"),
    ("mysql+pymysql://kpibot:s3cret-pw@db.internal:3307/kpi?charset=utf8mb4", "mariadb-dump --single-transaction",
     "MariaDB"),
])
def test_servers_get_their_dump_command_without_the_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, tool: str, server: str) -> None:
    config = tmp_path / "config.toml"
    text = EXAMPLE.read_text(encoding="utf-8").replace('url = "sqlite:///kpibot.db"', f'url = "{url}"')
    assert url in text
    config.write_text(text, encoding="utf-8")
    assert main(["--config", str(config), "db", "backup", str(tmp_path / "dump")]) == 3  # nothing backed up
    out = capsys.readouterr().out
    assert tool in out and "db.internal" in out and "kpi" in out and "s3cret-pw" not in out
    assert main(["--config", str(config), "db", "restore", str(tmp_path / "dump")]) == 2
    assert server in capsys.readouterr().err


def test_backup_templates_render() -> None:
    assert "内存中的 SQLite" in render("ops/db_backup_error.txt.j2", code="memory")
    assert "备份失败：disk full" in render("ops/db_backup_error.txt.j2", code="failed", reason="disk full")
    assert "请运行 kpibot db upgrade 升级到 0009" in render("ops/db_restore.txt.j2", path="b.db", revision="0004",
                                                           head="0009")
    assert "1,024 字节" in render("ops/db_backup.txt.j2", path="b.db", size=1024, revision="0004")
    assert "pg_restore" in render("ops/db_backup_server.txt.j2", server="PostgreSQL", path="d", connection="--dbname x",
                                  target="x")


def test_healthz_and_metrics_report_backlog_failures_last_runs_and_refusals(bot_env: BotEnv) -> None:
    with transaction(bot_env.bot.sessions) as session:
        enqueue(session, "k:ghost", Outgoing.text("ghost", "你好"), bot_env.clock.now())
        ghost = session.scalars(select(OutboxMessage).where(OutboxMessage.touser == "ghost")).one()
        ghost.status, ghost.last_error = "failed", "81013"
    bot_env.runner().run("inbox_prune")
    assert bot_env.chat.sender.post_raw(b"<xml/>", {}).status == 400
    base = f"http://127.0.0.1:{bot_env.port}"

    health = LOOPBACK.get(f"{base}/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["outbox_failed"] == 1 and health["outbox_backlog"] == 0
    assert health["jobs"]["inbox_prune"]["status"] == "done"
    assert health["jobs"]["month_close"] is None  # never ran: listed, so a missing job is visible
    assert health["requests_refused"] == {"missing_parameters": 1}

    response = LOOPBACK.get(f"{base}/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert "kpibot_outbox_failed 1.0" in text and "kpibot_outbox_backlog 0.0" in text
    assert 'kpibot_job_last_run_ok{job="inbox_prune",status="done"} 1.0' in text
    assert 'kpibot_job_last_run_started_timestamp_seconds{job="inbox_prune"}' in text
    assert 'kpibot_requests_refused_total{reason="missing_parameters"} 1.0' in text


def test_backlog_counts_what_is_written_but_not_delivered(bot_env: BotEnv) -> None:
    bot_env.bot.sender.stop()  # nothing is sent: what the handler wrote stays in the outbox
    with transaction(bot_env.bot.sessions) as session:
        for number in range(3):
            enqueue(session, f"k:{number}", Outgoing.text("lina", f"第 {number} 条"), bot_env.clock.now())
    health = LOOPBACK.get(f"http://127.0.0.1:{bot_env.port}/healthz", timeout=5).json()
    assert health["outbox_backlog"] == 3 and health["outbox_oldest_backlog_at"] is not None
    assert "kpibot_outbox_backlog 3.0" in LOOPBACK.get(f"http://127.0.0.1:{bot_env.port}/metrics", timeout=5).text
