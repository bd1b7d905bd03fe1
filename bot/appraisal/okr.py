"""OKR alignment: department objectives per quarter, members' key results, approval, progress and quarter-end scores."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal import numbers, periods
from bot.appraisal.people import Org, Person, Role, names_of
from bot.errors import CodedError
from bot.storage.models import Department, Member, OkrKeyResult, OkrObjective, OkrProgress
from bot.templates import render, words
from bot.wecom import cards
from scoring import Period
from scoring.okr_scores import kr_progress, kr_score, okr_average

# Key results are whole sentences with a number at the end: "复购率提升 15%", "策划会员专属活动 2场", optionally
# with the word for "target" before the number.
_TARGET_LABEL = "|".join(re.escape(word) for word in words("okr.target_label"))
_KR_TEXT = re.compile(r"^(?P<title>.+?)\s*(?:(?:" + _TARGET_LABEL + r")\s*[:：]?\s*)?"
                      r"(?P<target>\d+(?:\.\d+)?)\s*(?P<unit>[^\s\d][^\s]{0,7})?$")
_NUMBER = re.compile(r"^[+]?(\d+(?:\.\d+)?)")
_ID = re.compile(r"^(?:O|o|KR|kr|Kr)?#?(\d+)$")
TITLE_LIMIT = 255
UNIT_LIMIT = 16


class OkrError(CodedError):
    """A request the OKR rules refuse; `code` picks the sentence in okr/error.txt.j2."""

    TEMPLATE = "okr/error.txt.j2"


# -- what a person types; departments and people ----------------------------------------------------------

def parse_id(text: str) -> int | None:
    match = _ID.match(text.strip())
    return int(match.group(1)) if match else None


def parse_number(text: str) -> Decimal | None:
    """The number a person typed, with or without its unit ("3", "3场", "12.5%")."""
    match = _NUMBER.match(text.strip().replace("，", "").replace(",", ""))
    if not match:
        return None
    try:
        return numbers.checked(Decimal(match.group(1)))
    except (InvalidOperation, numbers.NumberError):
        return None


def display_number(value: Decimal | None) -> str:
    """2.00 → "2", 12.50 → "12.5": how a person writes a target."""
    if value is None:
        return "—"
    normal = value.normalize()
    return format(normal, "f") if normal == normal.to_integral_value() else format(normal, "f").rstrip("0")


def parse_kr_text(text: str) -> tuple[str, Decimal, str]:
    """ "策划会员专属活动 2场" → ("策划会员专属活动", 2, "场"); the target is the number at the end."""
    match = _KR_TEXT.match(text.strip())
    if not match or not re.search(r"[^\d\s.,，。]", match.group("title")):
        raise OkrError("kr_format")  # no title, or only a number
    title = match.group("title").strip().rstrip("，,：:")
    target = Decimal(match.group("target"))
    unit = (match.group("unit") or "").strip()
    if target <= 0:
        raise OkrError("target_not_positive")
    if len(title) > TITLE_LIMIT or len(unit) > UNIT_LIMIT:
        raise OkrError("too_long")
    return title, target, unit


def department_chain(session: Session, department_ids: Iterable[int]) -> list[int]:
    """The departments and all their ancestors, nearest first."""
    parents = {d.id: d.parent_id for d in session.scalars(select(Department))}
    chain: list[int] = []
    for start in department_ids:
        current: int | None = start
        while current is not None and current not in chain:
            chain.append(current)
            current = parents.get(current)
    return chain


def may_review(session: Session, person: Person, owner: str) -> bool:
    return person.role >= Role.ADMIN or owner in Org.load(session).team(person.userid)


def active_member(session: Session, userid: str) -> Member:
    member = session.get(Member, userid)
    if member is None or not member.active:
        raise OkrError("not_a_member")
    return member


# -- views --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KrView:
    id: int
    title: str
    owner: str
    owner_name: str
    target: Decimal
    unit: str
    current: Decimal
    status: str
    score: Decimal | None
    review_note: str | None
    objective_id: int
    objective_title: str
    quarter: str

    @property
    def progress_percent(self) -> int:
        return int((kr_progress(self.current, self.target) * 100).to_integral_value())

    @property
    def target_text(self) -> str:
        return display_number(self.target)

    @property
    def current_text(self) -> str:
        return display_number(self.current)

    @property
    def score_text(self) -> str:
        return "—" if self.score is None else f"{self.score:.2f}"

    @property
    def status_label(self) -> str:
        return render("okr/kr_status.txt.j2", status=self.status)


@dataclass(frozen=True)
class ObjectiveView:
    id: int
    title: str
    department: str
    quarter: str
    krs: tuple[KrView, ...]


def kr_views(session: Session, rows: Sequence[OkrKeyResult]) -> list[KrView]:
    objectives = {o.id: o for o in session.scalars(
        select(OkrObjective).where(OkrObjective.id.in_({row.objective_id for row in rows})))} if rows else {}
    names = names_of(session, (row.owner for row in rows))
    return [KrView(id=row.id, title=row.title, owner=row.owner, owner_name=names.get(row.owner, row.owner),
                   target=row.target, unit=row.unit, current=row.current, status=row.status, score=row.score,
                   review_note=row.review_note, objective_id=row.objective_id,
                   objective_title=objectives[row.objective_id].title if row.objective_id in objectives else "",
                   quarter=row.quarter) for row in rows]


def kr_view(session: Session, kr: OkrKeyResult) -> KrView:
    return kr_views(session, [kr])[0]


def _tree(session: Session, objectives: Sequence[OkrObjective], krs: Sequence[OkrKeyResult]) -> list[ObjectiveView]:
    departments = {d.id: d.name for d in session.scalars(select(Department))}
    views = kr_views(session, krs)
    return [ObjectiveView(id=o.id, title=o.title, department=departments.get(o.department_id, str(o.department_id)),
                          quarter=o.quarter, krs=tuple(v for v in views if v.objective_id == o.id))
            for o in objectives]


def _objectives(session: Session, quarter: Period, department_ids: Iterable[int]) -> list[OkrObjective]:
    ids = set(department_ids)
    if not ids:
        return []
    return list(session.scalars(select(OkrObjective).where(
        OkrObjective.quarter == str(quarter), OkrObjective.department_id.in_(ids)).order_by(OkrObjective.id)))


def _krs(session: Session, objective_ids: Iterable[int], owners: Iterable[str] | None = None) -> list[OkrKeyResult]:
    ids = set(objective_ids)
    if not ids:
        return []
    query = select(OkrKeyResult).where(OkrKeyResult.objective_id.in_(ids))
    if owners is not None:
        query = query.where(OkrKeyResult.owner.in_(set(owners)))
    return list(session.scalars(query.order_by(OkrKeyResult.id)))


def member_tree(session: Session, userid: str, quarter: Period) -> list[ObjectiveView]:
    """The objectives a member can align to (their departments and those above), with the member's own KRs."""
    member = active_member(session, userid)
    objectives = _objectives(session, quarter, department_chain(session, member.department_ids or ()))
    return _tree(session, objectives, _krs(session, (o.id for o in objectives), [userid]))


def team_tree(session: Session, manager_userid: str, quarter: Period) -> list[ObjectiveView]:
    """The objectives of the team's departments, with the KRs of the manager and everyone below them."""
    manager = active_member(session, manager_userid)
    team = [manager, *Org.load(session).team_members(manager_userid)]
    departments = department_chain(session, [d for m in team for d in (m.department_ids or ())])
    objectives = _objectives(session, quarter, departments)
    return _tree(session, objectives, _krs(session, (o.id for o in objectives), [m.userid for m in team]))


def department_tree(session: Session, userid: str, quarter: Period) -> list[ObjectiveView]:
    """The objectives of the member's departments and those above, with everyone's KRs under them."""
    member = active_member(session, userid)
    objectives = _objectives(session, quarter, department_chain(session, member.department_ids or ()))
    return _tree(session, objectives, _krs(session, (o.id for o in objectives)))


# -- changes ------------------------------------------------------------------------------------------------

def add_objective(session: Session, *, title: str, quarter: Period, department_id: int, by: str,
                  now: datetime) -> OkrObjective:
    title = title.strip()
    if not title:
        raise OkrError("objective_format")
    if len(title) > TITLE_LIMIT:
        raise OkrError("too_long")
    if session.get(Department, department_id) is None:
        raise OkrError("unknown_department", department=department_id)
    objective = OkrObjective(quarter=str(quarter), department_id=department_id, title=title, created_by=by,
                             created_at=now)
    session.add(objective)
    session.flush()
    return objective


def find_department(session: Session, name: str) -> Department:
    matches = list(session.scalars(select(Department).where(Department.name == name, Department.active.is_(True))))
    if len(matches) != 1:
        raise OkrError("unknown_department", department=name)
    return matches[0]


def add_kr(session: Session, *, owner: str, objective_id: int, title: str, target: Decimal, unit: str,
           now: datetime, current_quarter: Period) -> OkrKeyResult:
    """A personal KR aligned to one objective of the owner's departments (or one above); it awaits approval."""
    member = active_member(session, owner)
    objective = session.get(OkrObjective, objective_id)
    if objective is None:
        raise OkrError("unknown_objective", id=objective_id)
    if objective.department_id not in department_chain(session, member.department_ids or ()):
        raise OkrError("objective_not_aligned", id=objective_id, title=objective.title)
    if objective.quarter < str(current_quarter):  # 2026-Q4 < 2027-Q1: stored quarters sort as they follow
        raise OkrError("quarter_over", quarter=objective.quarter)
    kr = OkrKeyResult(objective_id=objective.id, owner=owner, quarter=objective.quarter, title=title,
                      target=target, unit=unit, current=Decimal(0), status="pending", created_at=now, updated_at=now)
    session.add(kr)
    session.flush()
    return kr


def get_kr(session: Session, kr_id: int) -> OkrKeyResult:
    kr = session.get(OkrKeyResult, kr_id)
    if kr is None:
        raise OkrError("unknown_kr", id=kr_id)
    return kr


def edit_kr(session: Session, *, kr_id: int, owner: str, title: str, target: Decimal, unit: str,
            now: datetime) -> OkrKeyResult:
    """A member rewrites a KR that is not approved yet; it goes back to the manager."""
    kr = get_kr(session, kr_id)
    if kr.owner != owner:
        raise OkrError("not_your_kr", id=kr_id)
    if kr.status == "approved":
        raise OkrError("already_approved", id=kr_id)
    kr.title, kr.target, kr.unit, kr.status, kr.updated_at = title, target, unit, "pending", now
    session.flush()
    return kr


def review_kr(session: Session, *, kr_id: int, by: Person, approve: bool, note: str, now: datetime) -> OkrKeyResult:
    """The owner's manager (or an admin) approves a pending KR or sends it back with a note."""
    kr = get_kr(session, kr_id)
    if not may_review(session, by, kr.owner):
        raise OkrError("not_reviewer", id=kr_id)
    if kr.status != "pending":
        raise OkrError("not_pending", id=kr_id, status=kr.status)
    kr.status = "approved" if approve else "returned"
    kr.review_note = note.strip() or None
    kr.reviewed_by, kr.reviewed_at, kr.updated_at = by.userid, now, now
    session.flush()
    return kr


def open_krs_for(session: Session, userid: str, on: date | None = None) -> list[KrView]:
    """The member's approved KRs still open for progress (not scored), oldest first; only the quarter that
    contains `on` when given. The weekly report asks one progress question for each."""
    query = select(OkrKeyResult).where(OkrKeyResult.owner == userid, OkrKeyResult.status == "approved",
                                       OkrKeyResult.score.is_(None))
    if on is not None:
        query = query.where(OkrKeyResult.quarter == str(periods.quarter_of(on)))
    return kr_views(session, list(session.scalars(query.order_by(OkrKeyResult.id))))


def record_kr_progress(session: Session, kr_id: int, value: Decimal, note: str, at: datetime, *,
                       by: str | None = None, source: str = "weekly_report") -> KrView:
    """Record the value a KR has reached (cumulative, in its unit), e.g. from the weekly report's answer.

    Raises OkrError when the KR is unknown, not approved, already scored, not `by`'s, or the value is negative."""
    kr = get_kr(session, kr_id)
    if by is not None and by != kr.owner:
        raise OkrError("not_your_kr", id=kr_id)
    if kr.status != "approved":
        raise OkrError("not_approved", id=kr_id)
    if kr.score is not None:
        raise OkrError("already_scored", id=kr_id, quarter=kr.quarter)
    if value < 0:
        raise OkrError("negative_progress")
    session.add(OkrProgress(kr_id=kr.id, value=value, note=note.strip(), source=source,
                            recorded_by=by or kr.owner, recorded_at=at))
    kr.current, kr.updated_at = value, at
    session.flush()
    return kr_view(session, kr)


def score_quarter(session: Session, quarter: Period, now: datetime) -> list[OkrKeyResult]:
    """Give every approved KR of the quarter its 0-1.0 score from its progress (once; later runs skip them).
    KRs never approved are not scored: nobody agreed to them."""
    rows = list(session.scalars(select(OkrKeyResult).where(
        OkrKeyResult.quarter == str(quarter), OkrKeyResult.status == "approved", OkrKeyResult.score.is_(None))
        .order_by(OkrKeyResult.owner, OkrKeyResult.id)))
    for kr in rows:
        kr.score, kr.scored_at = kr_score(kr.current, kr.target), now
    session.flush()
    return rows


def averages_for(session: Session, userids: Iterable[str], quarter: Period) -> dict[str, Decimal]:
    """Each member's mean KR score in a scored quarter (the `okr` indicator source); members without one are absent."""
    wanted = set(userids)
    if not wanted:
        return {}
    scores: dict[str, list[Decimal]] = {}
    for kr in session.scalars(select(OkrKeyResult).where(
            OkrKeyResult.quarter == str(quarter), OkrKeyResult.owner.in_(wanted),
            OkrKeyResult.score.is_not(None))):
        scores.setdefault(kr.owner, []).append(kr.score)  # type: ignore[arg-type]
    return {owner: average for owner, values in scores.items() if (average := okr_average(values)) is not None}


def approval_card(kr: KrView, lines: Sequence[str]) -> dict[str, Any]:
    """A button card for the approver from the five lines of okr/approval_card.txt.j2; each click comes back
    as okr:approve:<id> or okr:return:<id>."""
    title, description, body, approve, send_back = (list(lines) + [""] * 5)[:5]
    return cards.button_card(task_id=cards.new_task_id(f"okr_kr{kr.id}"), title=title, description=description,
                             body=body, buttons=[cards.CardButton(approve, f"okr:approve:{kr.id}"),
                                                 cards.CardButton(send_back, f"okr:return:{kr.id}",
                                                                  cards.ButtonStyle.SECONDARY)])
