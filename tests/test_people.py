"""Roles as people read them, and the one query for the members being appraised."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.appraisal.people import Role, active_members
from bot.storage.models import Member


def test_each_role_reads_as_its_chinese_name() -> None:
    """people/role.txt.j2 names each role."""
    assert [role.label for role in Role] == ["访客", "成员", "主管", "绩效管理员"]


def test_active_members_leaves_out_who_left_and_sorts_by_userid(engine: Engine) -> None:
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with Session(engine) as session, session.begin():
        for userid, active in (("zhou", True), ("an", True), ("left", False)):
            session.add(Member(userid=userid, name=userid, active=active, synced_at=now))
    with Session(engine) as session:
        assert [member.userid for member in active_members(session)] == ["an", "zhou"]
