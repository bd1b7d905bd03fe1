"""The edge's own rule: a request that does not arrive in full within request_timeout loses its connection."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from bot.app import KpiBot
from bot.clock import FakeClock
from bot.storage.db import make_engine
from bot.wecom.edge import waitress_adjustments
from bot.fakes.wecom import FakeWeCom
from tests.harness import make_config, prepare_database

REQUEST_TIMEOUT = 1


@pytest.fixture
def port(db_url: str, clock: FakeClock, fake_wecom: FakeWeCom) -> Iterator[int]:
    config = make_config(db_url, fake_wecom.base_url,
                         server={"request_timeout": REQUEST_TIMEOUT, "channel_timeout": 60})
    engine = make_engine(db_url)
    prepare_database(engine, db_url)
    bot = KpiBot(config, clock=clock, engine=engine)
    yield bot.start_http(host="127.0.0.1", port=0)
    bot.stop()


def closed_after(conn: socket.socket) -> float:
    """Seconds until the server closes the connection (a read returns EOF), at most 15."""
    started = time.monotonic()
    conn.settimeout(15)
    while conn.recv(1024):
        pass
    return time.monotonic() - started


def test_a_half_sent_request_is_dropped_at_the_deadline_not_after_the_idle_timeout(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /wecom/callback HTTP/1.1\r\nHost: kpibot\r\n")  # and never the rest
        assert closed_after(conn) < 10  # channel_timeout is 60 s; the deadline is 1 s (+ the 1 s sweep)


def test_a_silent_connection_is_dropped_at_the_deadline_too(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        assert closed_after(conn) < 10


def test_a_body_announced_over_the_limit_is_refused_before_it_is_sent(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /wecom/callback HTTP/1.1\r\nHost: kpibot\r\nContent-Length: 1073741824\r\n\r\n")
        conn.settimeout(10)
        assert conn.recv(200).startswith(b"HTTP/1.1 413")


def test_waitress_gets_the_configured_limits() -> None:
    config = make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/",
                         server={"connection_limit": 500, "channel_timeout": 20, "max_body_bytes": 1000,
                                 "max_header_bytes": 2048, "threads": 4})
    adjustments = waitress_adjustments(config.server)
    assert adjustments["connection_limit"] == 500 and adjustments["channel_timeout"] == 20
    assert adjustments["max_request_body_size"] == 1000 and adjustments["max_request_header_size"] == 2048
    assert adjustments["threads"] == 4 and adjustments["asyncore_use_poll"] is True


@pytest.mark.parametrize("key", ["connection_limit", "channel_timeout", "request_timeout", "max_header_bytes"])
def test_a_zero_limit_is_a_config_error(key: str) -> None:
    from bot.config import ConfigError
    with pytest.raises(ConfigError, match=f"server.{key}"):
        make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/", server={key: 0})
