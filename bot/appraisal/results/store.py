"""Frozen results: a result as stored JSON with what it keeps besides the numbers, and the period's state."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.results.compute import chunks
from bot.appraisal.results.roster import Roster
from bot.storage.models import PeriodResult, ResultPeriod
from scoring import (Calibration, Cycle, Deduction, Dimension, DimensionSubtotals, IndicatorResult, IndicatorStatus,
                     MemberResult, Period, PeriodKind, RatingRule, Scheme)
from scoring.decimals import round2


# -- a result as JSON ----------------------------------------------------------------------------------------------
def _d(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dd(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def result_to_json(result: MemberResult) -> dict[str, Any]:
    """A MemberResult as JSON with exact decimal strings; result_from_json gives the same result back."""
    return {
        "member": result.member, "team": result.team, "department": result.department,
        "period": str(result.period), "total": str(result.total), "original_total": str(result.original_total),
        "grade": result.grade, "bonus_class": result.bonus_class, "bonus": _d(result.bonus),
        "complete": result.complete, "missing": list(result.missing),
        "dimensions": {"performance": str(result.dimensions.performance),
                       "behavior": str(result.dimensions.behavior)},
        "rank_in_team": result.rank_in_team, "rank_in_department": result.rank_in_department,
        "appraised": result.appraised, "provisional": result.provisional, "months": list(result.months),
        "calibration": None if result.calibration is None else {
            "adjusted_total": str(result.calibration.adjusted_total), "reason": result.calibration.reason,
            "author": result.calibration.author},
        "indicators": [{
            "key": item.key, "dimension": item.dimension.value, "cycle": item.cycle.value,
            "status": item.status.value, "value": _d(item.value), "target": _d(item.target),
            "score": _d(item.score), "weight": str(item.weight), "scheme_weight": str(item.scheme_weight),
            "missing": list(item.missing), "periods_scored": item.periods_scored,
            "periods_waived": item.periods_waived,
            "deductions": [{"metric": d.metric, "op": d.op, "threshold": str(d.threshold), "actual": str(d.actual),
                            "points": str(d.points), "period": d.period} for d in item.deductions],
        } for item in result.indicators],
    }


def result_from_json(data: Mapping[str, Any]) -> MemberResult:
    calibration = data.get("calibration")
    return MemberResult(
        member=data["member"], team=data.get("team"), department=data.get("department"),
        period=Period.parse(data["period"]), total=Decimal(data["total"]),
        original_total=Decimal(data["original_total"]), grade=data["grade"], bonus_class=data.get("bonus_class"),
        bonus=_dd(data.get("bonus")), complete=bool(data["complete"]), missing=tuple(data.get("missing", ())),
        dimensions=DimensionSubtotals(Decimal(data["dimensions"]["performance"]),
                                      Decimal(data["dimensions"]["behavior"])),
        indicators=tuple(IndicatorResult(
            key=item["key"], dimension=Dimension(item["dimension"]), cycle=Cycle(item["cycle"]),
            status=IndicatorStatus(item["status"]), value=_dd(item.get("value")), target=_dd(item.get("target")),
            score=_dd(item.get("score")), weight=Decimal(item["weight"]), scheme_weight=Decimal(item["scheme_weight"]),
            deductions=tuple(Deduction(d["metric"], d["op"], Decimal(d["threshold"]), Decimal(d["actual"]),
                                       Decimal(d["points"]), d["period"]) for d in item.get("deductions", ())),
            missing=tuple(item.get("missing", ())), periods_scored=int(item.get("periods_scored", 0)),
            periods_waived=int(item.get("periods_waived", 0)),
        ) for item in data.get("indicators", ())),
        rank_in_team=data.get("rank_in_team"), rank_in_department=data.get("rank_in_department"),
        appraised=bool(data.get("appraised", True)), months=tuple(data.get("months", ())),
        calibration=None if calibration is None else Calibration(
            data["member"], Decimal(calibration["adjusted_total"]), calibration["reason"], calibration["author"]),
    )


# -- what a stored result keeps ------------------------------------------------------------------------------------
def key_names(scheme: Scheme) -> dict[str, str]:
    """Every metric's and indicator's name by key, as a stored result and its messages name them."""
    return {**{m.key: m.name for m in scheme.metrics}, **{i.key: i.name for i in scheme.indicators}}


def freeze(result: MemberResult, scheme: Scheme, roster: Roster, comments: Sequence[Mapping[str, str]],
           team_size: int, suggestions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What a stored result keeps besides the engine's numbers: names as they were, comments, team size."""
    return {
        "result": result_to_json(result),
        "scheme": {"key": scheme.key, "name": scheme.name},
        "name": roster.org.name(result.member),
        "team_name": roster.org.name(result.team) if result.team else "",
        "team_department_name": roster.department_name(roster.main_departments.get(result.member)),
        "department_name": roster.department_name(result.department),
        "not_due": _not_due(result, scheme),
        "scheme_behavior_share": str(_behavior_share(scheme)),
        "team_size": team_size,
        "names": key_names(scheme),
        "units": {**{m.key: m.unit for m in scheme.metrics}, **{i.key: i.unit for i in scheme.indicators}},
        "ratings": [i.key for i in scheme.indicators if isinstance(i.rule, RatingRule)],
        "comments": list(comments),
        "suggestions": list(suggestions),
    }


def _not_due(result: MemberResult, scheme: Scheme) -> list[dict[str, str]]:
    """The scheme's indicators this period does not score (an annual one in a month): their weight went to the
    others, so the dimension shares differ from the scheme's."""
    scored = {item.key for item in result.indicators}
    return [{"key": i.key, "name": i.name, "cycle": i.cycle.value, "dimension": i.dimension.value}
            for i in scheme.indicators if i.key not in scored]


def _behavior_share(scheme: Scheme) -> Decimal:
    total = sum((i.weight for i in scheme.indicators), Decimal(0))
    behavior = sum((i.weight for i in scheme.indicators if i.dimension != Dimension.PERFORMANCE), Decimal(0))
    return round2(behavior * 100 / total) if total > 0 else Decimal(0)


def team_sizes(results: Iterable[MemberResult]) -> dict[str | None, int]:
    sizes: dict[str | None, int] = defaultdict(int)
    for result in results:
        if result.counts and result.team is not None:
            sizes[result.team] += 1
    return sizes


# -- reading and writing stored results ------------------------------------------------------------------------------
def upsert(session: Session, existing: PeriodResult | None, result: MemberResult, scheme: Scheme,
           frozen: dict[str, Any], status: str, now: datetime) -> PeriodResult:
    if existing is None:
        existing = PeriodResult(userid=result.member, period=str(result.period))
        session.add(existing)
    existing.scheme_key = scheme.key
    existing.team, existing.department = result.team, result.department
    existing.status, existing.total, existing.grade = status, str(result.total), result.grade
    existing.complete, existing.data, existing.computed_at = result.complete, frozen, now
    existing.published_at = now if status == "published" else None
    return existing


def stored_results(session: Session, period: str, userids: Sequence[str]) -> dict[str, PeriodResult]:
    found: dict[str, PeriodResult] = {}
    for chunk in chunks(list(userids)):
        for row in session.scalars(select(PeriodResult).where(PeriodResult.period == period,
                                                              PeriodResult.userid.in_(list(chunk)))):
            found[row.userid] = row
    return found


def stored_result(session: Session, userid: str, period: str) -> PeriodResult | None:
    return session.scalar(select(PeriodResult).where(PeriodResult.userid == userid, PeriodResult.period == period))


def published_results(session: Session, period: Period) -> list[MemberResult]:
    rows = session.scalars(select(PeriodResult).where(PeriodResult.period == str(period),
                                                      PeriodResult.status == "published"))
    return [result_from_json(row.data["result"]) for row in rows]


def latest_published_period(session: Session, userid: str, kind: PeriodKind = PeriodKind.MONTH) -> Period | None:
    periods = session.scalars(select(PeriodResult.period).where(PeriodResult.userid == userid,
                                                                PeriodResult.status == "published")).all()
    matching = sorted((Period.parse(p) for p in periods if Period.parse(p).kind is kind),
                      key=lambda p: (p.year, p.index))
    return matching[-1] if matching else None


def period_state(session: Session, period: str) -> ResultPeriod | None:
    return session.get(ResultPeriod, period)


def set_state(session: Session, period: str, state: str, now: datetime) -> None:
    row = session.get(ResultPeriod, period)
    if row is None:
        row = ResultPeriod(period=period, state=state, closed_at=None, published_at=None)
        session.add(row)
    if state == "closed" and row.state != "published":
        row.state, row.closed_at = "closed", now
    elif state == "published" and row.state != "published":  # a forced re-run keeps the first publication
        row.state, row.published_at = "published", now
