"""The org chart: manager resolution, the sync's bookkeeping, and the sync against WeCom's tokens and visibility."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatClientException

from bot.cli.main import main
from bot.storage.db import transaction
from bot.sandbox.demo_org import DEMO_PEOPLE
from bot.storage.models import Member
from bot.appraisal.org_sync import DepartmentRecord, OrgNotVisible, UserRecord, apply_org, resolve_manager, sync_org
from tests.harness import BotEnv, make_config, write_config_file

NOW = datetime(2026, 11, 27, 2, 40, tzinfo=timezone.utc)

DEPARTMENTS = {
    1: DepartmentRecord(1, "公司", None, ("ceo",), 0),
    2: DepartmentRecord(2, "社群运营部", 1, ("director",), 0),
    3: DepartmentRecord(3, "社群一组", 2, ("lead3",), 0),
    4: DepartmentRecord(4, "社群二组", 2, (), 0),
}


def user(userid: str, department: int, direct: tuple[str, ...] = ()) -> UserRecord:
    return UserRecord(userid, userid, (department,), department, direct, "", 1)


KNOWN = {"ceo", "director", "lead3", "alice", "bob", "carol"}


def test_direct_leader_wins() -> None:
    assert resolve_manager(user("alice", 3, ("director",)), DEPARTMENTS, KNOWN) == "director"


def test_direct_leader_outside_visibility_falls_back_to_the_department_leader() -> None:
    assert resolve_manager(user("alice", 3, ("stranger",)), DEPARTMENTS, KNOWN) == "lead3"


def test_department_leader_without_direct_leader() -> None:
    assert resolve_manager(user("bob", 3), DEPARTMENTS, KNOWN) == "lead3"


def test_a_leader_of_their_own_department_reports_up_the_tree() -> None:
    assert resolve_manager(user("lead3", 3), DEPARTMENTS, KNOWN) == "director"
    assert resolve_manager(user("director", 2), DEPARTMENTS, KNOWN) == "ceo"


def test_a_department_without_leader_walks_up() -> None:
    assert resolve_manager(user("carol", 4), DEPARTMENTS, KNOWN) == "director"


def test_the_top_has_no_manager() -> None:
    assert resolve_manager(user("ceo", 1), DEPARTMENTS, KNOWN) is None


def test_apply_org_adds_updates_and_deactivates_never_deletes(engine: Engine, db_url: str) -> None:
    config = make_config(db_url, "http://127.0.0.1:1/cgi-bin/", org={"admins": ["director"]})
    users = [user("director", 2), user("lead3", 3), user("alice", 3), user("bob", 3)]
    with Session(engine) as session:
        report = apply_org(session, list(DEPARTMENTS.values()), users, config, NOW)
        session.commit()
    assert report.added == ("alice", "bob", "director", "lead3")
    assert report.without_manager == ("director",)  # ceo is not in the synced departments' members

    left_bob = UserRecord("bob", "bob", (3,), 3, (), "", 5)  # status 5: left the company
    with Session(engine) as session:
        report = apply_org(session, list(DEPARTMENTS.values()), users[:3] + [left_bob], config, NOW)
        session.commit()
    assert report.deactivated == ("bob",)
    with Session(engine) as session:
        members = {m.userid: m for m in session.scalars(select(Member))}
    assert set(members) == {"director", "lead3", "alice", "bob"}
    assert members["bob"].active is False and members["bob"].deactivated_at == NOW
    assert members["alice"].manager_userid == "lead3"
    assert members["lead3"].manager_userid == "director"
    assert members["director"].is_admin is True


# -- against the fake WeCom: tokens and the app's visibility ------------------------------------------------

def test_the_org_sync_refreshes_a_rejected_token_once_and_never_loops(bot_env: BotEnv) -> None:
    bot_env.bot.sync_org()
    tokens_before = len(bot_env.fake.calls("gettoken"))
    bot_env.fake.expire_tokens()  # WeCom may drop a token early: 42001
    assert bot_env.bot.sync_org().members == len(DEMO_PEOPLE)
    assert len(bot_env.fake.calls("gettoken")) == tokens_before + 1
    for errcode in (40014, 41001):
        bot_env.fake.inject("department/list", errcode=errcode)
        assert bot_env.bot.sync_org().members == len(DEMO_PEOPLE)
    calls = len(bot_env.fake.calls("department/list"))
    bot_env.fake.inject("department/list", errcode=40014, times=5)
    with pytest.raises(WeChatClientException) as raised:
        bot_env.bot.sync_org()
    assert raised.value.errcode == 40014
    assert len(bot_env.fake.calls("department/list")) == calls + 2  # the call and one retry with a new token


def test_the_org_sync_reads_its_roots_from_what_the_app_can_see(bot_env: BotEnv) -> None:
    # 可见范围 is 社群运营部 (2) only: department 1 is not visible, and the sync must not ask for it.
    bot_env.fake.set_visibility(departments=(2,))
    report = bot_env.bot.sync_org()
    assert report.departments == 3 and report.members == len(DEMO_PEOPLE)
    assert all(call.query.get("id") in (None, "") for call in bot_env.fake.calls("department/list"))
    # Narrower still: 社群一组 (3) only. Its members' managers resolve within what is visible.
    bot_env.fake.set_visibility(departments=(3,))
    report = bot_env.bot.sync_org()
    group_one = {p.userid for p in DEMO_PEOPLE if p.department == 3}
    assert report.departments == 1 and report.members == len(group_one)
    with transaction(bot_env.bot.sessions) as session:
        members = {m.userid: m for m in session.scalars(select(Member).where(Member.active.is_(True)))}
    assert set(members) == group_one
    assert members["zhangwei"].manager_userid == "lina"
    assert members["lina"].direct_leaders == [] and members["lina"].manager_userid is None  # 周敏 is not visible
    # No department visible at all: a clear error, and nobody is deactivated by an empty answer.
    bot_env.fake.set_visibility(departments=(), users=("zhoumin",))
    with pytest.raises(OrgNotVisible) as raised:
        bot_env.bot.sync_org()
    assert raised.value.department is None and "可见范围内没有任何部门" in str(raised.value)
    with transaction(bot_env.bot.sessions) as session:
        assert len(list(session.scalars(select(Member).where(Member.active.is_(True))))) == len(group_one)


def test_a_configured_department_outside_the_visibility_is_one_clear_line(
        bot_env: BotEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bot_env.fake.set_visibility(departments=(3,))
    config = replace(bot_env.config, org=replace(bot_env.config.org, departments=(4,)))
    with pytest.raises(OrgNotVisible) as raised, transaction(bot_env.bot.sessions) as session:
        sync_org(session, bot_env.bot.client, config, bot_env.clock.now())
    assert raised.value.department == 4
    text = str(raised.value)
    assert "部门 4" in text and "60011" in text and "可见范围" in text and "[org] departments" in text

    path = write_config_file(tmp_path, bot_env.fake.base_url, org={"departments": [4]})
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["--config", str(path), "org", "sync"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "应用看不到部门 4" in err[0] and "可见范围" in err[0]
