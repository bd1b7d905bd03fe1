"""The org chart: departments and members from WeCom's contacts API, and who manages whom."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatClientException

from bot.config import Config
from bot.storage.models import Department, Member
from bot.templates import render
from bot.wecom.client import WeComClient

log = logging.getLogger(__name__)

ACTIVE_STATUS = 1  # WeCom user status: 1 active; 2 disabled, 4 not activated, 5 left
NOT_VISIBLE = 60011
WHOLE_COMPANY = (1,)  # [org] departments' default: everything the app's 可见范围 holds


class OrgNotVisible(Exception):
    """60011: a department the sync needs is outside the app's 可见范围; the message says where to add it."""

    def __init__(self, department: int | None, errmsg: str = "") -> None:
        self.department = department
        self.errmsg = errmsg
        super().__init__(render("ops/org_not_visible.txt.j2", department=department, errmsg=errmsg))


@dataclass(frozen=True)
class DepartmentRecord:
    id: int
    name: str
    parent_id: int | None
    leaders: tuple[str, ...]
    order: int


@dataclass(frozen=True)
class UserRecord:
    userid: str
    name: str
    departments: tuple[int, ...]
    main_department: int | None
    direct_leaders: tuple[str, ...]
    position: str
    status: int


@dataclass(frozen=True)
class SyncReport:
    departments: int
    members: int
    added: tuple[str, ...]
    deactivated: tuple[str, ...]
    without_manager: tuple[str, ...]


def contacts_get(client: WeComClient, path: str, params: dict[str, Any], department: int | None = None
                 ) -> dict[str, Any]:
    """One contacts call (a token WeCom rejects is refreshed once, never in a loop); 60011 becomes OrgNotVisible
    naming the department."""
    try:
        return client.call(path, params=params)
    except WeChatClientException as error:
        if error.errcode == NOT_VISIBLE:
            raise OrgNotVisible(department, str(error.errmsg)) from None
        raise


def fetch_org(client: WeComClient, roots: Iterable[int]) -> tuple[list[DepartmentRecord], list[UserRecord]]:
    """Read the departments under each root and their members, one user/list call per department
    (WeCom's current docs drop fetch_child, so we walk the tree ourselves). With the default roots the
    departments are what the app can see: department/list without id lists its 可见范围, which need not
    include department 1."""
    departments: dict[int, DepartmentRecord] = {}
    roots = tuple(roots)
    queries: list[tuple[int | None, dict[str, Any]]] = (
        [(None, {})] if roots in ((), WHOLE_COMPANY) else [(root, {"id": root}) for root in roots])
    for root, params in queries:
        for item in contacts_get(client, "department/list", params, root).get("department", []):
            departments[int(item["id"])] = DepartmentRecord(
                id=int(item["id"]), name=item.get("name", str(item["id"])),
                parent_id=int(item["parentid"]) if item.get("parentid") not in (None, "") else None,
                leaders=tuple(item.get("department_leader") or ()), order=int(item.get("order") or 0))
    if not departments:
        raise OrgNotVisible(None)  # syncing an empty org would deactivate everyone
    users: dict[str, UserRecord] = {}
    for department_id in sorted(departments):
        result = contacts_get(client, "user/list", {"department_id": department_id}, department_id)
        for item in result.get("userlist", []):
            userid = item["userid"]
            if userid in users:
                continue
            users[userid] = UserRecord(
                userid=userid, name=item.get("name") or userid,
                departments=tuple(int(d) for d in item.get("department") or ()),
                main_department=int(item["main_department"]) if item.get("main_department") else None,
                direct_leaders=tuple(item.get("direct_leader") or ()), position=item.get("position") or "",
                status=int(item.get("status") or ACTIVE_STATUS))
    return list(departments.values()), list(users.values())


def resolve_manager(user: UserRecord, departments: Mapping[int, DepartmentRecord], known: set[str]) -> str | None:
    """direct_leader[0] when we know that person; else the leader of the main department, walking
    up the tree while the member leads their own department."""
    for leader in user.direct_leaders:
        if leader in known and leader != user.userid:
            return leader
    department_id = user.main_department or (user.departments[0] if user.departments else None)
    visited: set[int] = set()
    while department_id is not None and department_id in departments and department_id not in visited:
        visited.add(department_id)
        department = departments[department_id]
        for leader in department.leaders:
            if leader != user.userid and leader in known:
                return leader
        department_id = department.parent_id
    return None


def apply_org(session: Session, departments: list[DepartmentRecord], users: list[UserRecord], config: Config,
              now: datetime) -> SyncReport:
    """Write the fetched org into the database. Members who left are deactivated, never deleted."""
    by_id = {d.id: d for d in departments}
    active_users = [u for u in users if u.status == ACTIVE_STATUS]
    known = {u.userid for u in active_users}
    existing_departments = {d.id: d for d in session.scalars(select(Department))}
    for record in departments:
        row = existing_departments.get(record.id)
        if row is None:
            session.add(Department(id=record.id, name=record.name, parent_id=record.parent_id,
                                   leaders=list(record.leaders), sort_order=record.order, active=True, synced_at=now))
        else:
            row.name, row.parent_id, row.leaders = record.name, record.parent_id, list(record.leaders)
            row.sort_order, row.active, row.synced_at = record.order, True, now
    for department_id, row in existing_departments.items():
        if department_id not in by_id:
            row.active = False

    existing = {m.userid: m for m in session.scalars(select(Member))}
    added: list[str] = []
    without_manager: list[str] = []
    admins = set(config.org.admins)
    for user in active_users:
        manager = resolve_manager(user, by_id, known)
        if manager is None:
            without_manager.append(user.userid)
        row = existing.get(user.userid)
        fields: dict[str, Any] = dict(
            name=user.name, department_ids=list(user.departments), main_department=user.main_department,
            position=user.position, direct_leaders=list(user.direct_leaders), manager_userid=manager,
            is_admin=user.userid in admins, active=True, wecom_status=user.status, synced_at=now,
            deactivated_at=None)
        if row is None:
            session.add(Member(userid=user.userid, **fields))
            added.append(user.userid)
        else:
            for key, value in fields.items():
                setattr(row, key, value)
    deactivated: list[str] = []
    for userid, row in existing.items():
        if userid not in known and row.active:
            row.active = False
            row.deactivated_at = now
            status = next((u.status for u in users if u.userid == userid), None)
            row.wecom_status = status if status is not None else row.wecom_status
            deactivated.append(userid)
    session.flush()
    return SyncReport(departments=len(departments), members=len(active_users), added=tuple(sorted(added)),
                      deactivated=tuple(sorted(deactivated)), without_manager=tuple(sorted(without_manager)))


def sync_org(session: Session, client: WeComClient, config: Config, now: datetime) -> SyncReport:
    departments, users = fetch_org(client, config.org.departments)
    report = apply_org(session, departments, users, config, now)
    log.info("org sync: %s departments, %s members, %s added, %s deactivated", report.departments,
             report.members, len(report.added), len(report.deactivated))
    return report
