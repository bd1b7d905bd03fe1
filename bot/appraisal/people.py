"""People: roles, who a person is to the bot, and the one query for the members being appraised."""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Member
from bot.templates import render


class Role(IntEnum):
    """What a person may do; a higher role may do everything a lower one may."""

    GUEST = 0  # in WeCom's visibility but not in the appraised departments
    MEMBER = 1
    MANAGER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return render("people/role.txt.j2", role=self.name)


@dataclass(frozen=True)
class Person:
    userid: str
    name: str
    role: Role
    manager_userid: str | None = None
    department_ids: tuple[int, ...] = ()


def active_members(session: Session) -> list[Member]:
    """Everyone still in the appraised departments, by userid (members who left stay stored, inactive)."""
    return list(session.scalars(select(Member).where(Member.active.is_(True)).order_by(Member.userid)))
