"""The permission matrix, generated from the routers' command table: every command × role × whose data, 0 leaks.

Every member's weekly reports, self-reviews and data-entry reasons carry a marker naming them; after
each command (and each push job) every message anyone received is searched for markers of people
the recipient may not see. A command added to any router is in the matrix without a new test."""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import pytest

from bot.appraisal.entries import record
from bot.storage.db import transaction
from bot.storage.models import SelfReview, WeeklyReport
from bot.appraisal.workcalendar import week_of
from handlers import ROUTERS
from tests.harness import EVERYONE, LINA_TEAM, NAMES, WANGQIANG_TEAM, BotEnv, EnvFactory
from tests.test_permissions import ADMIN, ADMIN_WUHAO

# Who may see whose data, written out from the demo org rather than computed by the code under test.
TEAMS = {"lina": set(LINA_TEAM), "wangqiang": set(WANGQIANG_TEAM),
         "zhoumin": {"lina", "wangqiang", *LINA_TEAM, *WANGQIANG_TEAM}}
# actor → (role label, self, someone in their own team, someone in another team)
ACTORS = {
    "zhangwei": ("member", "zhangwei", "liuyang", "zhaolei"),
    "lina": ("manager", "lina", "zhangwei", "zhaolei"),
    "zhoumin": ("manager of managers", "zhoumin", "zhangwei", "wangqiang"),
    ADMIN: ("admin", ADMIN, "zhaolei", "zhangwei"),
}
MARKER = re.compile(r"机密(?:周报|自评|理由)-([a-z]+)-")
PERIOD = "2026-11"


def may_see(viewer: str, owner: str) -> bool:
    return viewer == owner or viewer == ADMIN or owner in TEAMS.get(viewer, set())


def command_names() -> list[str]:
    return [spec.name for router in ROUTERS for spec in router.commands]


@pytest.fixture
def env(make_env: EnvFactory) -> BotEnv:
    started = make_env(**ADMIN_WUHAO)
    plant_markers(started)
    return started


def plant_markers(env: BotEnv) -> None:
    now = env.clock.now()
    week = week_of(now.date())
    with transaction(env.bot.sessions) as session:
        for userid in EVERYONE:
            answers = {q.key: f"机密周报-{userid}-{q.key}" for q in env.config.weekly_report.questions}
            session.add(WeeklyReport(userid=userid, week=week, answers=answers, status="submitted", late=False,
                                     created_at=now, updated_at=now, submitted_at=now))
            session.add(SelfReview(userid=userid, month=PERIOD, ratings={}, achievements=f"机密自评-{userid}-成果",
                                   improvements=f"机密自评-{userid}-改进", created_at=now, updated_at=now,
                                   submitted_at=now))
            record(session, userid=userid, key="content_output", period=PERIOD, kind="value", value=Decimal("20"),
                   reason=f"机密理由-{userid}-", source="chat", actor="test", now=now, audit=False)


class Matrix:
    def __init__(self, env: BotEnv) -> None:
        self.env = env
        self.cases = 0
        self.messages = 0
        self.shown = 0  # markers seen by someone allowed to see them: proof the matrix reaches the data
        self.leaks: list[str] = []

    def check_new(self, since: int, what: str) -> None:
        for message in self.env.fake.delivered()[since:]:
            self.messages += 1
            text = str(message.payload)
            for owner in set(MARKER.findall(text)):
                if not may_see(message.touser, owner):
                    self.leaks.append(f"{what}: {message.touser} was shown {owner}'s data")
                else:
                    self.shown += 1

    def say(self, actor: str, text: str) -> None:
        env = self.env
        env.advance(minutes=6)  # WeCom's duplicate check drops an identical reply within 5 minutes
        since = len(env.fake.delivered())
        for line in (text, "/cancel"):  # /cancel: a command that opens a conversation must not swallow the next
            env.chat.send(actor, line)
            env.settle(mark_read=True)
        self.cases += 1
        self.check_new(since, f"{actor} {text!r}")

    def push(self, job_id: str, at: datetime | None = None, period: str | None = None) -> None:
        since = len(self.env.fake.delivered())
        try:
            self.env.runner().run(job_id, at, period=period, force=True)
        except Exception:  # noqa: BLE001 - a job refusing (e.g. data incomplete) pushes nothing to check
            pass
        self.env.settle(mark_read=True)
        self.cases += 1
        self.check_new(since, f"job {job_id}")


def test_no_command_and_no_push_shows_anyone_data_they_may_not_see(env: BotEnv) -> None:
    matrix = Matrix(env)
    commands = command_names()
    assert len(commands) >= 15
    for actor, (_role, own, teammate, outsider) in ACTORS.items():
        for command in commands:
            matrix.say(actor, command)
            for target in (own, teammate, outsider):
                matrix.say(actor, f"{command} {NAMES[target]}")
        matrix.say(actor, f"/reports {NAMES[outsider]} 上周")
        matrix.say(actor, f"/score {NAMES[outsider]} {PERIOD}")
    week = week_of(env.clock.now().date())
    for job_id, period in (("weekly_escalation", week), ("weekly_reminder", week), ("self_review_reminder", PERIOD),
                           ("month_close", PERIOD), ("publish", PERIOD)):
        matrix.push(job_id, period=period)
    print(f"\npermission matrix: {len(commands)} commands × {len(ACTORS)} actors × (bare + self/own team/other team)"
          f" + pushes = {matrix.cases} cases, {matrix.messages} messages checked, {matrix.shown} allowed sightings"
          f" of someone's data, {len(matrix.leaks)} leaks")
    assert matrix.messages > matrix.cases and matrix.shown > 0  # replies arrived and did carry people's data
    assert matrix.leaks == []


def test_the_markers_are_shown_where_they_are_allowed(env: BotEnv) -> None:
    # Without this the matrix could pass because no marker is ever printed anywhere.
    matrix = Matrix(env)
    since = len(env.fake.delivered())
    matrix.say("lina", "/reports 张伟")
    matrix.say("lina", f"/score 张伟 {PERIOD}")
    shown = {owner for message in env.fake.delivered()[since:] for owner in MARKER.findall(str(message.payload))}
    assert "zhangwei" in shown
    assert matrix.leaks == []
