"""Test harness (a pytest plugin): databases per backend, the fake WeCom, a running bot, and the verbs a test reads
like a transcript: `chat.say`, `env.settle`, `env.run_job`, `kpibot`. Tests use these, never copies of them."""
from __future__ import annotations

import csv
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, MetaData, delete, func, select

from bot.app import KpiBot
from bot.appraisal.entries import record
from bot.cli import main as cli
from bot.clock import FakeClock
from bot.config import Config, parse_config
from bot.fakes.callbacks import CallbackSender
from bot.fakes.wecom import DeliveredMessage, FakeWeCom
from bot.jobs.runner import JobResult, JobRunner
from bot.sandbox import demo_org
from bot.storage.db import make_engine, transaction, upgrade_database
from bot.storage.models import Base, InboxMessage, OutboxMessage
from bot.templates import render, template_names

if TYPE_CHECKING:
    from bot.chat.routing import Router

SHANGHAI = ZoneInfo("Asia/Shanghai")
CORP_ID = "wwkpibottest0001"
CORP_SECRET = "test-corp-secret-0001"
AGENT_ID = 1000002
TOKEN = "kpibotTestToken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
START = datetime(2026, 11, 27, 10, 7, tzinfo=SHANGHAI)  # a Friday, the last workday of the week
# November 2026's month close (5th workday of December) and its publication (7th), as the job table has them.
CLOSE_AT = datetime(2026, 12, 7, 10, 5, tzinfo=SHANGHAI)
PUBLISH_AT = datetime(2026, 12, 9, 10, 5, tzinfo=SHANGHAI)
# Long enough for a slow shared CI machine; a settled bot answers in milliseconds.
SETTLE_SECONDS = 15.0

_prepared: set[str] = set()


# -- the demo org as the tests know it: written out, not computed by the code under test -------------------------
LINA_TEAM = ("zhangwei", "liuyang", "chenjing", "yangfan")
WANGQIANG_TEAM = ("zhaolei", "huangli", "wuhao", "sunyue")
EVERYONE = ("zhoumin", "lina", "wangqiang", *LINA_TEAM, *WANGQIANG_TEAM)
NAMES = {"zhoumin": "周敏", "lina": "李娜", "wangqiang": "王强", "zhangwei": "张伟", "liuyang": "刘洋",
         "chenjing": "陈静", "yangfan": "杨帆", "zhaolei": "赵磊", "huangli": "黄丽", "wuhao": "吴昊", "sunyue": "孙悦"}
# A usual month's value of each indicator of the executor scheme.
USUAL_VALUES = {"net_follower_growth_rate": "5", "event_participation_rate": "30", "content_output": "20",
                "response_time": "15", "work_attitude": "4", "group_quit_rate": "5", "group_speaking_rate": "20"}


# -- databases, one per supported backend ------------------------------------------------------------------------
def backend_url(backend: str, directory: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{directory / 'kpibot.db'}"
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
    # Function-level: conftest.py loads this plugin, so importing conftest at module level would be a cycle.
    from tests.conftest import database_backends
    return database_backends()


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, tmp_path)


@pytest.fixture(scope="class", params=_backends())
def class_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database for a class of steps sharing one env (see `standalone_env`)."""
    return backend_url(request.param, tmp_path_factory.mktemp("steps"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    prepare_database(engine, db_url)
    yield engine
    engine.dispose()


# -- config ------------------------------------------------------------------------------------------------------
def _sections(api_base_url: str, database_url: str, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sections every test config has (the fake WeCom, a database, the demo org), with `overrides` merged in."""
    raw: dict[str, dict[str, Any]] = {
        "wecom": {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": CORP_SECRET, "token": TOKEN,
                  "encoding_aes_key": AES_KEY, "api_base_url": api_base_url, "request_timeout": 2.0},
        "database": {"url": database_url},
        "org": {"admins": list(demo_org.DEMO_ADMINS), "departments": [1]},
    }
    for name, values in overrides.items():
        raw.setdefault(name, {}).update(values)
    return raw


def make_config(db_url: str, api_base_url: str, **sections: dict[str, Any]) -> Config:
    """The config of a bot in a test process: on loopback, port chosen by the system; `sections` override keys."""
    running = {"server": {"host": "127.0.0.1", "port": 0, "threads": 8}, "bot": {"inbox_workers": 4}}
    for name, values in sections.items():
        running[name] = {**running.get(name, {}), **values}
    return parse_config(_sections(api_base_url, db_url, running), environ={})


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_table(name: str, values: dict[str, Any]) -> str:
    """One table; a list of tables under it (e.g. appraisal.assign) follows as [[name.key]] blocks."""
    def is_tables(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)

    text = f"[{name}]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items()
                                   if not is_tables(value))
    for key, tables in values.items():
        if is_tables(tables):
            text += "".join(_toml_table(f"[{name}.{key}]", table)[:-1] for table in tables)
    return text + "\n"


def write_config_file(directory: Path, api_base_url: str, name: str = "config.toml", *, database_url: str | None = None,
                      **sections: dict[str, Any]) -> Path:
    """A config file for the command line, pointing at the fake WeCom and `database_url` (default: a SQLite file
    in `directory`); `sections` override keys (e.g. wecom={"secret": "wrong"})."""
    raw = _sections(api_base_url, database_url or f"sqlite:///{directory / 'kpibot.db'}", sections)
    path = directory / name
    path.write_text("".join(_toml_table(table, values) for table, values in raw.items()), encoding="utf-8")
    return path


# -- the fake WeCom and the clock --------------------------------------------------------------------------------
@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@contextmanager
def running_fake(clock: FakeClock | None = None) -> Iterator[FakeWeCom]:
    """The fake WeCom on loopback, holding the demo org, on the given clock (the real one, like the CLI's, if None)."""
    fake = FakeWeCom(corp_id=CORP_ID, corp_secret=CORP_SECRET, agent_id=AGENT_ID, clock=clock.now if clock else None)
    demo_org.populate(fake)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_wecom(clock: FakeClock) -> Iterator[FakeWeCom]:
    with running_fake(clock) as fake:
        yield fake


# -- the chat ----------------------------------------------------------------------------------------------------
def message_text(message: DeliveredMessage) -> str:
    """What a person reads in a message: its text, or (for a card) the card's payload."""
    return message.payload.get("content") or str(message.payload)


@dataclass
class Chat:
    """Talk to the bot as WeCom would, and read what it sent back, like a transcript.

    Each member has a read position: `expect` and `say` return what arrived after it and move it on."""

    sender: CallbackSender
    fake: FakeWeCom
    seen: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def send(self, userid: str, text: str) -> Any:
        response = self.sender.text(userid, text)
        assert response.status == 200, f"callback answered {response.status}: {response.text}"
        return response

    def say(self, userid: str, text: str, replies: int = 1) -> str:
        """Send one message and return the text of the `replies` messages that answer it (one per line)."""
        self.send(userid, text)
        return "\n".join(message_text(message) for message in self.expect(userid, replies))

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
        return message_text(self.expect(userid, 1, timeout)[0])

    def mark_read(self) -> None:
        """Move everyone's read position past what was delivered so far (pushes a test reads with `texts_to`)."""
        for userid, count in Counter(message.touser for message in self.fake.delivered()).items():
            self.seen[userid] = count

    def texts_to(self, userid: str) -> list[str]:
        """The text of every message delivered to userid so far, read or not (a card's is empty)."""
        return [message.payload.get("content", "") for message in self.fake.delivered(userid)]

    def delivered_to(self, userid: str) -> list[DeliveredMessage]:
        return self.fake.delivered(userid)


# -- the running bot ---------------------------------------------------------------------------------------------
def callback_sender(port: int, clock: FakeClock | None = None) -> CallbackSender:
    """WeCom's side of the signed callback, aimed at a bot listening on `port` (on `clock`'s time if given)."""
    return CallbackSender(f"http://127.0.0.1:{port}/wecom/callback", token=TOKEN, encoding_aes_key=AES_KEY,
                          corp_id=CORP_ID, agent_id=AGENT_ID, clock=clock.now if clock else None)


@dataclass
class BotEnv:
    """A running bot on the fake WeCom, its clock, and a chat with it."""

    bot: KpiBot
    fake: FakeWeCom
    clock: FakeClock
    chat: Chat
    config: Config
    port: int
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)  # what the config overrides

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wecom/callback"

    def advance(self, **kwargs: float) -> None:
        """Move time on and let the sender look again (retries and rate limits wait on the clock)."""
        self.clock.advance(timedelta(**kwargs))
        self.bot.sender.wake()

    def ask(self, userid: str, text: str) -> str:
        """`chat.say`, six minutes after what came before: WeCom's duplicate check drops an identical reply
        within 5 minutes, and a test asking the same thing twice wants both answers."""
        self.advance(minutes=6)
        return self.chat.say(userid, text)

    def settle(self, *, mark_read: bool = False) -> None:
        """Wait until every message received is handled and every message queued has a send outcome, so moving
        the clock cannot expire anything in flight; `mark_read` then moves every read position past it all."""
        self._drain_inbox()
        with transaction(self.bot.sessions) as session:
            queued = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
        self.bot.sender.wake()
        self.bot.sender.wait_for_outcomes(queued, timeout=SETTLE_SECONDS)
        if mark_read:
            self.chat.mark_read()

    def _drain_inbox(self) -> None:
        while True:
            processed = self.bot.inbox.processed  # read first: a message finishing after it wakes the wait below
            with transaction(self.bot.sessions) as session:
                pending = session.scalar(select(func.count()).select_from(InboxMessage).where(
                    InboxMessage.status == "pending")) or 0
            if not pending:
                return
            self.bot.inbox.wait_for_processed(processed + 1, timeout=SETTLE_SECONDS)

    def until_sent(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `condition()` holds, looking again each time the sender records an outcome (no polling)."""
        while True:
            recorded = sum(self.bot.sender.outcomes.values())  # read first, as in _drain_inbox
            if condition():
                return
            self.bot.sender.wait_for_outcomes(recorded + 1, timeout=timeout)

    def runner(self, holder: str | None = None) -> JobRunner:
        """The job runner of this bot (see `job_runner`)."""
        return job_runner(self.bot, holder)

    def run_job(self, job_id: str, at: datetime | None = None, *, mark_read: bool = False,
                **options: Any) -> JobResult:
        """Run a job of the table as the scheduler would at `at` (the clock moved there too), after what was
        queued before has gone out; return once what it queued has gone out too (see `settle` for mark_read)."""
        self.settle()
        if at is not None:
            self.clock.set(at)
        result = self.runner().run(job_id, at, **options)
        self.settle(mark_read=mark_read)
        return result

    def write_config_file(self, directory: Path) -> Path:
        """A config.toml for the command line, on the same database, fake WeCom and overrides as this bot."""
        return write_config_file(directory, self.fake.base_url, database_url=self.config.database.url.reveal(),
                                 **self.sections)


def job_runner(bot: KpiBot, holder: str | None = None) -> JobRunner:
    """The one place a test builds a job runner (as one process of the deployment, named `holder` if given)."""
    return bot.job_runner(holder)


def start_bot(config: Config, clock: FakeClock, engine: Engine, *,
              routers: list[Router] | None = None) -> tuple[KpiBot, int]:
    """A bot with its workers and sender running (no scheduler: tests run jobs themselves) and its HTTP port."""
    bot = KpiBot(config, clock=clock, engine=engine, routers=routers)
    bot.start(scheduler=False)
    port = bot.start_http(host="127.0.0.1", port=0)
    return bot, port


@contextmanager
def start_env(db_url: str, clock: FakeClock, fake: FakeWeCom, *, routers: list[Router] | None = None,
              **sections: dict[str, Any]) -> Iterator[BotEnv]:
    """The env factory: a running bot on `fake` with a config built from `sections` (and other routers if given)."""
    config = make_config(db_url, fake.base_url, **sections)
    engine = make_engine(db_url)
    prepare_database(engine, db_url)
    bot, port = start_bot(config, clock, engine, routers=routers)
    try:
        yield BotEnv(bot=bot, fake=fake, clock=clock, chat=Chat(callback_sender(port, clock), fake), config=config,
                     port=port, sections=sections)
    finally:
        bot.stop()


@contextmanager
def standalone_env(db_url: str, *, add_people: Callable[[FakeWeCom], None] | None = None,
                   **sections: dict[str, Any]) -> Iterator[BotEnv]:
    """An env with a clock and fake WeCom of its own (not the test's fixtures), for a class of steps sharing it;
    `add_people` adds members to the fake before the bot starts."""
    clock = FakeClock(START)
    with running_fake(clock) as fake:
        if add_people is not None:
            add_people(fake)
        with start_env(db_url, clock, fake, **sections) as env:
            yield env


@pytest.fixture
def bot_env(db_url: str, clock: FakeClock, fake_wecom: FakeWeCom) -> Iterator[BotEnv]:
    with start_env(db_url, clock, fake_wecom) as env:
        yield env


EnvFactory = Callable[..., BotEnv]


@pytest.fixture
def make_env(db_url: str, clock: FakeClock, fake_wecom: FakeWeCom) -> Iterator[EnvFactory]:
    """`make_env(routers=None, **sections)`: a running bot with some config sections (or its routers) changed, each
    test building the one it needs; all of them stop after the test."""
    with ExitStack() as running:
        yield lambda **sections: running.enter_context(start_env(db_url, clock, fake_wecom, **sections))


@pytest.fixture
def chat(bot_env: BotEnv) -> Chat:
    return bot_env.chat


def seed_month(env: BotEnv, period: str, userids: tuple[str, ...] = EVERYONE) -> None:
    """Every monthly value for these members, as if imported, each a little different so ranks are clear."""
    with transaction(env.bot.sessions) as session:
        for index, userid in enumerate(userids):
            for key, value in USUAL_VALUES.items():
                amount = Decimal(value) + (index if key == "content_output" else 0)
                record(session, userid=userid, key=key, period=period, kind="value", value=amount, reason="",
                       source="import", actor="test", now=env.clock.now(), audit=False)


# -- the command line --------------------------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`kpibot *argv` in this process: the exit code and what it printed to stdout and stderr."""
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def kpibot(capsys: pytest.CaptureFixture[str], config_path: Path, *argv: str) -> tuple[int, str, str]:
    """`kpibot --config config_path *argv` in this process (see `run_cli`)."""
    return run_cli(capsys, "--config", str(config_path), *argv)


DATA_FILE_HEADER = ["member", "team", "indicator", "period", "value", "target"]


def write_data_file(path: Path, rows: list[list[str]]) -> Path:
    """A data file as an admin exports it for `kpibot data import` and `kpibot score preview` (CSV, with header)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DATA_FILE_HEADER)
        writer.writerows(rows)
    return path


def score_preview(capsys: pytest.CaptureFixture[str], config_path: Path, data: Path, period: str,
                  scheme: str = "seed-executor") -> dict[str, Any]:
    """`kpibot score preview --format json` on a data file: each member's result, by userid."""
    code, out, err = kpibot(capsys, config_path, "score", "preview", "--scheme", scheme, "--data", str(data),
                            "--period", period, "--format", "json")
    assert code == 0, err
    return {item["member"]: item for item in json.loads(out)["results"]}


# -- templates ---------------------------------------------------------------------------------------------------
def assert_renders(name: str, variables: dict[str, Any], fragments: tuple[str, ...], *,
                   blank_runs: bool = True) -> str:
    """Render template `name` with realistic `variables` and check every fragment is in the text (and, with
    blank_runs=False, that it has no runs of blank lines); return the text."""
    text = render(name, **variables)
    for fragment in fragments:
        assert fragment in text, f"{name}: {fragment!r} not in {text!r}"
    if not blank_runs:
        assert not re.search(r"\n\s*\n\s*\n", text), f"{name} has runs of blank lines: {text!r}"
    return text


def templates_under(folder: str) -> set[str]:
    """The names of the shipped templates in `folder` (e.g. "okr/"), for a check that each has a rendering case."""
    return {name for name in template_names() if name.startswith(folder)}


# -- real kpibot processes (crash tests and the crash campaign) ---------------------------------------------------
PROCESS_TIMEOUT = 30.0
REPOSITORY = Path(__file__).resolve().parents[1]


class ProcessWaitError(AssertionError):
    """A kpibot process exited, or said nothing of the kind, before the line waited for."""


class KpibotProcess:
    """A `kpibot` subprocess whose output a thread reads, so a test waits on a line it prints, never on a sleep.

    `everyone`, when given, hears every line of every process sharing it (to see which of several says a thing)."""

    def __init__(self, argv: list[str], env: dict[str, str],
                 everyone: queue.Queue[tuple[KpibotProcess, str]] | None = None) -> None:
        self.popen = subprocess.Popen([sys.executable, "-m", "bot.cli.main", *argv], cwd=REPOSITORY, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._everyone = everyone
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)
            self._new.put(line)
            if self._everyone is not None:
                self._everyone.put((self, line))
        self._new.put(None)

    def wait_for(self, text: str, timeout: float = PROCESS_TIMEOUT) -> str:
        """The first line (printed already or still to come) that contains `text`."""
        for line in list(self.lines):
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise ProcessWaitError(f"exited ({self.popen.wait()}) before {text!r}:\n{''.join(self.lines)[-4000:]}")
            if text in line:
                return line
        raise ProcessWaitError(f"no {text!r} within {timeout}s:\n{''.join(self.lines)[-4000:]}")

    def output(self) -> str:
        """Everything the process printed, once it has exited."""
        while self._new.get(timeout=PROCESS_TIMEOUT) is not None:
            pass
        return "".join(self.lines)

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=PROCESS_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM and wait: a send under way ends before anything is counted."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
