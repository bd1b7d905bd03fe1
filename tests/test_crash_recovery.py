"""Acknowledged means never lost: a bot killed after answering WeCom still replies once it is back."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from bot.app import KpiBot
from bot.clock import FakeClock
from bot.storage.db import make_engine, transaction
from bot.fakes.wecom import FakeWeCom
from bot.storage.models import InboxMessage, OutboxMessage
from tests.harness import callback_sender, make_config, prepare_database, start_bot, write_config_file

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_serve(config_path: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "bot.cli.main", "--config", str(config_path), "serve", "--no-scheduler"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    for line in process.stdout:  # wait for the banner instead of sleeping
        if b"/wecom/callback" in line:
            return process
    raise AssertionError(f"kpibot serve exited with {process.wait()}")


def test_sigkill_after_acknowledging_still_replies_after_restart(tmp_path: Path, db_url: str,
                                                                 fake_wecom: FakeWeCom) -> None:
    engine = make_engine(db_url)
    prepare_database(engine, db_url)
    port = _free_port()
    config_path = write_config_file(tmp_path, fake_wecom.base_url, database_url=db_url,
                                    server={"host": "127.0.0.1", "port": port}, org={"admins": ["zhoumin"]})
    # WeCom is unreachable for sends: the reply can only wait in the outbox when the process dies.
    fake_wecom.inject("message/send", http_status=502, times=1000)
    process = _start_serve(config_path, port)
    try:
        assert callback_sender(port).text("zhangwei", "/help").status == 200
        fake_wecom.wait_for_calls("message/send", 1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert fake_wecom.delivered("zhangwei") == []
    fake_wecom.clear_injections()
    process = _start_serve(config_path, port)
    try:
        # the dead process's claim on the row lapses after 2 x request_timeout + 5 s; then it is resent
        reply = fake_wecom.wait_for("zhangwei", count=1, timeout=30)[0]
        assert "/help" in reply.payload["content"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert len(fake_wecom.delivered("zhangwei")) == 1
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    engine.dispose()


def test_a_stored_but_unprocessed_message_is_processed_at_start_up(db_url: str, clock: FakeClock,
                                                                   fake_wecom: FakeWeCom) -> None:
    config = make_config(db_url, fake_wecom.base_url)
    engine = make_engine(db_url)
    prepare_database(engine, db_url)
    # A bot that only answers HTTP: it acknowledges and stores, then "dies" before any worker runs.
    first = KpiBot(config, clock=clock, engine=engine)
    first.sync_org()
    port = first.start_http(host="127.0.0.1", port=0)
    assert callback_sender(port, clock).text("liuyang", "/help").status == 200
    first.stop_http()
    with transaction(first.sessions) as session:
        assert session.scalar(select(InboxMessage.status)) == "pending"
    second, _ = start_bot(config, clock, make_engine(db_url))
    try:
        assert "/help" in fake_wecom.wait_for("liuyang", count=1)[0].payload["content"]
    finally:
        second.stop()
        engine.dispose()
