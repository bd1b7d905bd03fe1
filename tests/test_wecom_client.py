"""The access token: fetched once, shared through the database by every process, refreshed by one at a time."""
from __future__ import annotations

import threading

from sqlalchemy import Engine

from bot.clock import FakeClock
from bot.storage.db import make_session_factory
from bot.fakes.wecom import FakeWeCom
from bot.wecom.client import WeComClient
from tests.harness import make_config


def _client(engine: Engine, fake: FakeWeCom, clock: FakeClock, db_url: str) -> WeComClient:
    config = make_config(db_url, fake.base_url)
    return WeComClient(config.wecom, make_session_factory(engine), clock)


def test_two_processes_share_one_token_and_concurrent_threads_fetch_it_once(
        engine: Engine, db_url: str, fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    first, second = (_client(engine, fake_wecom, clock, db_url) for _ in range(2))
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda c=client: tokens.append(c.access_token))
               for client in (first, second) * 8]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tokens) == 16 and len(set(tokens)) == 1
    assert len(fake_wecom.calls("gettoken")) == 1


def test_an_expired_token_is_refetched_once(engine: Engine, db_url: str, fake_wecom: FakeWeCom,
                                            clock: FakeClock) -> None:
    client = _client(engine, fake_wecom, clock, db_url)
    old = client.access_token
    clock.advance(hours=2)  # WeCom tokens live 7,200 s; ours is refreshed five minutes early
    new = client.access_token
    assert new != old
    assert len(fake_wecom.calls("gettoken")) == 2


def test_a_rejected_token_is_forgotten_only_if_nobody_replaced_it(engine: Engine, db_url: str,
                                                                  fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    first, second = (_client(engine, fake_wecom, clock, db_url) for _ in range(2))
    stale = first.access_token
    fake_wecom.expire_tokens()
    second.forget_token(stale)
    fresh = second.access_token
    assert fresh != stale
    first.forget_token(stale)  # the other process saw the same 42001 a moment later
    assert first.access_token == fresh  # it picks up the fresh token instead of fetching again
    assert len(fake_wecom.calls("gettoken")) == 2


def test_the_client_never_shows_its_secret(engine: Engine, db_url: str, fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    client = _client(engine, fake_wecom, clock, db_url)
    assert "test-corp-secret" not in repr(client)
