"""The org chart: manager resolution from direct leaders and department leaders, and the sync's bookkeeping."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.models import Member
from bot.org import DepartmentRecord, UserRecord, apply_org, resolve_manager
from tests.harness import make_config

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
