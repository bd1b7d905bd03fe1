"""Fixtures of the fake WeCom's tests: a fake on a settable clock holding a small org, and a client aimed at it."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from wechatpy.enterprise import WeChatClient

from bot.fakes.wecom import FakeWeCom
from tests.fake_wecom.support import AGENT_ID, CORP_ID, SECRET, START, FakeClock, LocalClient


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeWeCom]:
    with FakeWeCom(CORP_ID, SECRET, AGENT_ID, clock=clock.now) as server:
        server.add_department(2, "运营部", order=2)
        server.add_department(3, "社群组", parentid=2, order=1)
        server.add_department(4, "内容组", parentid=2, order=0)
        server.add_department(5, "财务部", order=1)
        server.add_user("dora", "Dora", departments=(2,), leader_in=(2,), position="运营总监")
        server.add_user("alice", "Alice", departments=(3,), direct_leader=("dora",))
        server.add_user("bob", "Bob", departments=(3, 4), main_department=4, direct_leader=("dora",))
        server.add_user("carol", "Carol", departments=(4,), leader_in=(4,))
        server.add_user("frank", "Frank", departments=(5,))
        server.add_user("gone", "Gone", departments=(5,), status=2)
        yield server


@pytest.fixture
def client(fake: FakeWeCom) -> WeChatClient:
    return LocalClient(fake)
