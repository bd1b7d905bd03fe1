"""People: roles, who a person is to the bot, the members being appraised and the org: the one team walk."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
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


def names_of(session: Session, userids: Iterable[str]) -> dict[str, str]:
    """The stored members' names by userid (left or not); a userid not stored is absent."""
    wanted = set(userids)
    if not wanted:
        return {}
    return {m.userid: m.name for m in session.scalars(select(Member).where(Member.userid.in_(wanted)))}


def manager_or_admins(session: Session, userid: str, admins: Sequence[str]) -> list[str]:
    """Who approves what a member proposes (a KR, their 360 raters): their manager, else the admins but them."""
    member = session.get(Member, userid)
    if member is not None and member.manager_userid:
        return [member.manager_userid]
    return [admin for admin in admins if admin != userid] or list(admins)


@dataclass
class Org:
    """The active members, who reports to whom and who is an admin, read once per command or job.

    A member sees their own results; a manager also their team (direct reports and, transitively, the
    reports of managers below them); an admin everyone. Changing data, ratings and calibrations follows
    the same lines, except that nobody but an admin changes their own."""

    members: Mapping[str, Member]
    reports: Mapping[str, tuple[str, ...]]
    admins: frozenset[str]
    _teams: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, session: Session, config: Config | None = None) -> Org:
        """From storage; the admins are those WeCom marks and `config`'s [org] admins (a team walk needs none)."""
        members = {m.userid: m for m in active_members(session)}
        reports: dict[str, list[str]] = {}
        for member in members.values():
            if member.manager_userid and member.manager_userid in members:
                reports.setdefault(member.manager_userid, []).append(member.userid)
        configured = frozenset(config.org.admins) if config is not None else frozenset()
        admins = configured | {m.userid for m in members.values() if m.is_admin}
        return cls(members, {k: tuple(v) for k, v in reports.items()}, admins)

    def is_admin(self, userid: str) -> bool:
        return userid in self.admins

    def is_manager(self, userid: str) -> bool:
        return bool(self.reports.get(userid))

    def manager_of(self, userid: str) -> str | None:
        member = self.members.get(userid)
        manager = member.manager_userid if member is not None else None
        return manager if manager in self.members else None

    def direct_team(self, manager: str) -> tuple[str, ...]:
        return self.reports.get(manager, ())

    def team(self, manager: str) -> tuple[str, ...]:
        """Everyone below the manager, breadth first (direct reports, then theirs...)."""
        cached = self._teams.get(manager)
        if cached is not None:
            return cached
        found: list[str] = []
        seen = {manager}
        queue = [manager]
        while queue:
            for userid in self.reports.get(queue.pop(0), ()):
                if userid not in seen:
                    seen.add(userid)
                    found.append(userid)
                    queue.append(userid)
        self._teams[manager] = tuple(found)
        return self._teams[manager]

    def team_members(self, manager: str) -> list[Member]:
        """Org.team as the members themselves."""
        return [self.members[userid] for userid in self.team(manager)]

    def can_see(self, viewer: str, member: str) -> bool:
        return viewer == member or self.is_admin(viewer) or member in self.team(viewer)

    def can_manage(self, viewer: str, member: str) -> bool:
        """May enter data, rate, waive and calibrate for this member."""
        if self.is_admin(viewer):
            return member in self.members
        return member != viewer and member in self.team(viewer)

    def visible(self, viewer: str) -> tuple[str, ...]:
        """The members whose results the viewer may see besides their own, in a stable order."""
        if self.is_admin(viewer):
            return tuple(userid for userid in self.members if userid != viewer)
        return self.team(viewer)

    def only_visible(self, viewer: str, userids: Iterable[str]) -> list[str]:
        """The userids the viewer may see, in the order given: every push passes its rows through this."""
        return [userid for userid in userids if self.can_see(viewer, userid)]

    def name(self, userid: str | None) -> str:
        member = self.members.get(userid or "")
        return member.name if member is not None else (userid or "")
