"""Test harness (a pytest plugin): databases per backend, the fake WeCom, a running bot and a chat transcript helper."""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, MetaData, delete, inspect, text

from bot.sandbox import demo_org
from bot.app import KpiBot
from bot.clock import FakeClock
from bot.config import Config, parse_config
from bot.storage.db import make_engine, upgrade_database
from bot.fakes.wecom import DeliveredMessage, FakeWeCom
from bot.storage.models import Base
from bot.fakes.callbacks import CallbackSender

SHANGHAI = ZoneInfo("Asia/Shanghai")
CORP_ID = "wwkpibottest0001"
CORP_SECRET = "test-corp-secret-0001"
AGENT_ID = 1000002
TOKEN = "kpibotTestToken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
START = datetime(2026, 11, 27, 10, 7, tzinfo=SHANGHAI)  # a Friday, the last workday of the week

_prepared: set[str] = set()


def backend_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'kpibot.db'}"
    variable = {"postgresql": "KPIBOT_TEST_POSTGRES_URL", "mysql": "KPIBOT_TEST_MYSQL_URL"}[backend]
    return os.environ[variable]


def reset_database(engine: Engine) -> None:
    """Drop everything (our tables and Alembic's) so migrations start from an empty schema."""
    metadata = MetaData()
    metadata.reflect(bind=engine)
    metadata.drop_all(bind=engine)


def prepare_database(engine: Engine, url: str) -> None:
    """Migrate once per test run and backend; afterwards only empty the tables (much faster on servers)."""
    if url.startswith("sqlite"):
        upgrade_database(engine)
        return
    if url not in _prepared:
        reset_database(engine)
        upgrade_database(engine)
        _prepared.add(url)
        return
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


def _backends() -> list[str]:
    from tests.conftest import database_backends
    return database_backends()


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    prepare_database(engine, db_url)
    yield engine
    engine.dispose()


def make_config(db_url: str, api_base_url: str, **sections: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {
        "wecom": {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": CORP_SECRET, "token": TOKEN,
                  "encoding_aes_key": AES_KEY, "api_base_url": api_base_url, "request_timeout": 2.0},
        "database": {"url": db_url},
        "server": {"host": "127.0.0.1", "port": 0, "threads": 8},
        "org": {"admins": list(demo_org.DEMO_ADMINS), "departments": [1]},
        "bot": {"inbox_workers": 4},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(raw, environ={})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fake_wecom(clock: FakeClock) -> Iterator[FakeWeCom]:
    fake = FakeWeCom(corp_id=CORP_ID, corp_secret=CORP_SECRET, agent_id=AGENT_ID, clock=clock.now)
    demo_org.populate(fake)
    fake.start()
    yield fake
    fake.stop()


@dataclass
class Chat:
    """Talk to the bot as WeCom would, and read what it sent back, like a transcript."""

    sender: CallbackSender
    fake: FakeWeCom
    seen: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def send(self, userid: str, text: str) -> Any:
        response = self.sender.text(userid, text)
        assert response.status == 200, f"callback answered {response.status}: {response.text}"
        return response

    def click(self, userid: str, event_key: str, task_id: str) -> Any:
        response = self.sender.card_click(userid, event_key=event_key, task_id=task_id)
        assert response.status == 200
        return response

    def expect(self, userid: str, count: int = 1, timeout: float = 5.0) -> list[DeliveredMessage]:
        """The next `count` messages delivered to userid (waiting for them), in order."""
        already = self.seen[userid]
        delivered = self.fake.wait_for(userid, count=already + count, timeout=timeout)
        self.seen[userid] = already + count
        return delivered[already:already + count]

    def expect_text(self, userid: str, timeout: float = 5.0) -> str:
        message = self.expect(userid, 1, timeout)[0]
        return message.payload.get("content") or str(message.payload)

    def delivered_to(self, userid: str) -> list[DeliveredMessage]:
        return self.fake.delivered(userid)


@dataclass
class BotEnv:
    bot: KpiBot
    fake: FakeWeCom
    clock: FakeClock
    chat: Chat
    config: Config
    port: int

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wecom/callback"

    def advance(self, **kwargs: float) -> None:
        """Move time on and let the sender look again (retries and rate limits wait on the clock)."""
        self.clock.advance(timedelta(**kwargs))
        self.bot.sender.wake()


def start_bot(config: Config, clock: FakeClock, engine: Engine, fake: FakeWeCom) -> tuple[KpiBot, int]:
    bot = KpiBot(config, clock=clock, engine=engine)
    bot.start(scheduler=False)
    port = bot.start_http(host="127.0.0.1", port=0)
    return bot, port


@pytest.fixture
def bot_env(db_url: str, clock: FakeClock, fake_wecom: FakeWeCom) -> Iterator[BotEnv]:
    config = make_config(db_url, fake_wecom.base_url)
    engine = make_engine(db_url)
    prepare_database(engine, db_url)
    bot, port = start_bot(config, clock, engine, fake_wecom)
    sender = CallbackSender(f"http://127.0.0.1:{port}/wecom/callback", token=TOKEN, encoding_aes_key=AES_KEY,
                            corp_id=CORP_ID, agent_id=AGENT_ID, clock=clock.now)
    env = BotEnv(bot=bot, fake=fake_wecom, clock=clock, chat=Chat(sender, fake_wecom), config=config, port=port)
    yield env
    bot.stop()


@pytest.fixture
def chat(bot_env: BotEnv) -> Chat:
    return bot_env.chat


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config_file(directory: Path, api_base_url: str, name: str = "config.toml", *, database_url: str | None = None,
                      **sections: dict[str, Any]) -> Path:
    """A config file for the command line, pointing at the fake WeCom and `database_url` (default: a SQLite file
    in `directory`); `sections` override keys (e.g. wecom={"secret": "wrong"})."""
    raw: dict[str, dict[str, Any]] = {
        "wecom": {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": CORP_SECRET, "token": TOKEN,
                  "encoding_aes_key": AES_KEY, "api_base_url": api_base_url, "request_timeout": 2.0},
        "database": {"url": database_url or f"sqlite:///{directory / 'kpibot.db'}"},
        "org": {"admins": list(demo_org.DEMO_ADMINS), "departments": [1]},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path = directory / name
    path.write_text("".join(f"[{name}]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items())
                            + "\n" for name, values in raw.items()), encoding="utf-8")
    return path
