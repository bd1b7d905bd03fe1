"""Acknowledged means never lost: a bot killed after answering WeCom still replies once it is back."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from bot.clock import FakeClock
from bot.storage.db import make_engine, transaction
from bot.fakes.wecom import FakeWeCom
from bot.storage.models import InboxMessage, OutboxMessage
from bot.fakes.callbacks import CallbackSender
from tests.harness import AES_KEY, AGENT_ID, CORP_ID, TOKEN, make_config, prepare_database, start_bot

ROOT = Path(__file__).resolve().parent.parent


def _write_config(path: Path, db_url: str, api_base_url: str, port: int) -> None:
    path.write_text(f"""
[wecom]
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
secret = "test-corp-secret-0001"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"
api_base_url = "{api_base_url}"
request_timeout = 2.0

[database]
url = "{db_url}"

[server]
host = "127.0.0.1"
port = {port}

[org]
admins = ["zhoumin"]
""", encoding="utf-8")


def _free_port() -> int:
    import socket
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
    config_path = tmp_path / "config.toml"
    _write_config(config_path, db_url, fake_wecom.base_url, port)
    # WeCom is unreachable for sends: the reply can only wait in the outbox when the process dies.
    fake_wecom.inject("message/send", http_status=502, times=1000)
    process = _start_serve(config_path, port)
    try:
        sender = CallbackSender(f"http://127.0.0.1:{port}/wecom/callback", token=TOKEN, encoding_aes_key=AES_KEY,
                                corp_id=CORP_ID, agent_id=AGENT_ID)
        assert sender.text("zhangwei", "/help").status == 200
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
    from bot.app import KpiBot
    # A bot that only answers HTTP: it acknowledges and stores, then "dies" before any worker runs.
    first = KpiBot(config, clock=clock, engine=engine)
    first.sync_org()
    port = first.start_http(host="127.0.0.1", port=0)
    sender = CallbackSender(f"http://127.0.0.1:{port}/wecom/callback", token=TOKEN, encoding_aes_key=AES_KEY,
                            corp_id=CORP_ID, agent_id=AGENT_ID, clock=clock.now)
    assert sender.text("liuyang", "/help").status == 200
    first.stop_http()
    with transaction(first.sessions) as session:
        assert session.scalar(select(InboxMessage.status)) == "pending"
    second, _ = start_bot(config, clock, make_engine(db_url), fake_wecom)
    try:
        assert "/help" in fake_wecom.wait_for("liuyang", count=1)[0].payload["content"]
    finally:
        second.stop()
        engine.dispose()
