"""What people read about results: the variables results/*.j2 templates take, from frozen and computed results."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.people import Org
from bot.appraisal.results.compute import Computed, compute
from bot.appraisal.results.roster import Roster
from bot.appraisal.results.store import freeze, key_names, period_state, stored_results, team_sizes
from bot.appraisal.results.quality import Jump
from bot.config import Config
from bot.storage.models import Idp, IdpItem, PeriodResult
from bot.templates import render
from scoring import MemberResult, Period, PeriodResults, Problem, Scheme, grade_distribution
from scoring.decimals import round2

# Rows of a team table shown in one chat reply; the full list is `kpibot results export`.
ROWS_SHOWN = 100
GRADE_ORDER = "SABCDE"


# -- numbers, periods, labels -------------------------------------------------------------------------------------
def number_text(value: Decimal | str | None) -> str:
    """A value as people write it: 4.6, 22, 32000 (no exponent, no trailing zeros)."""
    if value is None:
        return ""
    value = Decimal(value) if isinstance(value, str) else value
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def period_label(period: Period) -> str:
    return render("results/_period.txt.j2", kind=period.kind.value, year=period.year, index=period.index)


def months_label(months: Sequence[str]) -> str:
    """"7-12" for the months a partial quarter or year covers, "10、12" when they are not contiguous ("" for all)."""
    if not months:
        return ""
    numbers = [int(month[5:]) for month in months]
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    return "、".join(str(number) for number in numbers)


def missing_label(label: str, names: Mapping[str, str]) -> str:
    key, _, sub = label.partition("@")
    return f"{names.get(key, key)}（{sub}）" if sub else names.get(key, key)


def missing_labels(computed: Computed, userid: str) -> list[str]:
    """What a member's result still lacks, as people read it: 内容生产量（2026-11）."""
    names = key_names(computed.schemes[userid])
    return [missing_label(label, names) for label in computed.results[userid].missing]


# -- one member's result ------------------------------------------------------------------------------------------
def result_view(frozen: Mapping[str, Any], *, status: str = "published") -> dict[str, Any]:
    """The variables results/*.j2 templates read about one member's result, from its frozen form."""
    result = frozen["result"]
    names, units = frozen.get("names", {}), frozen.get("units", {})
    comments = [{**c, "name": names.get(c["key"], c["key"]), "period_label": period_label(Period.parse(c["period"]))}
                for c in frozen.get("comments", ())]
    indicators = []
    for item in result["indicators"]:
        unit = units.get(item["key"], "")
        indicators.append({
            "key": item["key"], "name": names.get(item["key"], item["key"]), "status": item["status"],
            "rating": item["key"] in frozen.get("ratings", ()),
            "dimension": item["dimension"], "score": item["score"], "weight": item["weight"],
            "value": number_text(item["value"]), "target": number_text(item["target"]), "unit": unit,
            "missing": item["missing"],
            "deductions": [{"name": names.get(d["metric"], d["metric"]), "op": d["op"],
                            "threshold": number_text(d["threshold"]), "actual": number_text(d["actual"]),
                            "points": number_text(d["points"]), "unit": units.get(d["metric"], ""),
                            "period": d["period"]} for d in item["deductions"]],
        })
    calibration = result.get("calibration")
    period = Period.parse(result["period"])
    return {
        "userid": result["member"], "name": frozen.get("name", result["member"]),
        "period": result["period"], "period_label": period_label(period), "kind": period.kind.value,
        "status": status, "scheme_name": frozen.get("scheme", {}).get("name", ""),
        "total": result["total"], "original_total": result["original_total"], "grade": result["grade"],
        "calibrated": calibration is not None,
        "calibration_reason": calibration["reason"] if calibration else "",
        "bonus_class": result["bonus_class"], "bonus": result["bonus"],
        "complete": result["complete"], "appraised": result.get("appraised", True),
        "provisional": not result["complete"], "months": list(result.get("months", ())),
        "months_label": months_label(result.get("months", ())),
        "missing": [missing_label(label, names) for label in result["missing"]],
        "performance": result["dimensions"]["performance"], "behavior": result["dimensions"]["behavior"],
        "rank_in_team": result["rank_in_team"], "team_size": frozen.get("team_size", 0),
        "rank_in_department": result["rank_in_department"], "team_name": frozen.get("team_name", ""),
        "indicators": indicators, "comments": comments, "suggestions": list(frozen.get("suggestions", ())),
        "not_due": list(frozen.get("not_due", ())), "scheme_behavior_share": frozen.get("scheme_behavior_share", ""),
    }


def member_view(computed: Computed, roster: Roster, userid: str) -> dict[str, Any]:
    """A computed (not yet published) result in the shape result_view gives, for /score's breakdown."""
    result = computed.results[userid]
    sizes = team_sizes(computed.results.values())
    frozen = freeze(result, computed.schemes[userid], roster, computed.comments.get(userid, ()),
                    sizes.get(result.team, 0))
    return result_view(frozen, status="draft")


def history(session: Session, userid: str, period: Period, count: int) -> list[dict[str, str]]:
    """The member's published results of the same kind before `period`, oldest first, with the trend."""
    rows = session.scalars(select(PeriodResult).where(PeriodResult.userid == userid,
                                                      PeriodResult.status == "published")).all()
    same = sorted((row for row in rows if Period.parse(row.period).kind is period.kind
                   and (Period.parse(row.period).year, Period.parse(row.period).index) <= (period.year, period.index)),
                  key=lambda row: (Period.parse(row.period).year, Period.parse(row.period).index))
    same = same[-(count + 1):]
    found: list[dict[str, str]] = []
    before: Decimal | None = None
    for row in same:
        total = Decimal(row.total)
        trend = "" if before is None else ("up" if total > before else "down" if total < before else "flat")
        found.append({"period": row.period, "total": row.total, "grade": row.grade, "trend": trend})
        before = total
    return found


# -- team tables -----------------------------------------------------------------------------------------------------
def draft_row(computed: Computed, roster: Roster, userid: str, jumps: Sequence[Jump], *, held: bool = False
              ) -> dict[str, Any]:
    """One member's line in a table of results not yet published (the close's drafts, /team before publication)."""
    result = computed.results[userid]
    return {"userid": userid, "name": roster.org.name(userid), "total": str(result.total), "grade": result.grade,
            "complete": result.complete, "calibrated": result.calibration is not None, "held": held,
            "appraised": result.appraised, "provisional": result.provisional,
            "rank": result.rank_in_team, "missing": missing_labels(computed, userid),
            "jumps": [{"name": j.name, "before": j.before, "now": j.now, "percent": j.percent} for j in jumps]}


def team_rows(session: Session, config: Config, org: Org, viewer: str, period: Period
              ) -> tuple[str, list[dict[str, Any]]]:
    """(status, rows) of the viewer's team for /team: frozen results once published, live drafts during the
    calibration window, nothing before the close."""
    team = org.visible(viewer)
    state = period_state(session, str(period))
    if state is None:
        return "open", []
    if state.state == "published":
        stored = stored_results(session, str(period), list(team))
        rows = []
        for userid in team:
            row = stored.get(userid)
            if row is None:
                continue
            view = result_view(row.data, status=row.status)
            rows.append({"userid": userid, "name": view["name"], "team_name": view["team_name"],
                         "total": view["total"], "grade": view["grade"], "rank": view["rank_in_team"],
                         "complete": view["complete"], "calibrated": view["calibrated"],
                         "appraised": view["appraised"], "provisional": view["provisional"],
                         "published": row.status == "published", "missing": view["missing"]})
        return "published", _sorted_rows(rows)
    roster = Roster.load(session, config)
    computed = compute(session, config, period, roster=roster, userids=list(team))
    rows = []
    for userid in team:
        result = computed.results.get(userid)
        if result is None:
            continue
        draft = draft_row(computed, roster, userid, [])
        draft.update(team_name=org.name(result.team), published=False)
        rows.append(draft | {"rank": result.rank_in_team})
    return "closed", _sorted_rows(rows)


def _sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["team_name"], not r["complete"], -Decimal(r["total"]), r["userid"]))


def problem_views(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """The engine's data problems an admin can fix, as the close's admin message lists them (the first ten)."""
    return [{"code": p.code, "params": {k: str(v) for k, v in p.params.items()}} for p in problems
            if p.code in ("data.no_target", "data.invalid_rating", "data.unknown_key")][:10]


# -- the publication's messages ----------------------------------------------------------------------------------
def idp_view(session: Session, idp: Idp, names: Mapping[str, str], member_name: str, manager_name: str
             ) -> dict[str, Any]:
    items = session.scalars(select(IdpItem).where(IdpItem.idp_id == idp.id).order_by(IdpItem.id)).all()
    return {"id": idp.id, "member": member_name, "manager": manager_name, "opened_for": idp.opened_for,
            "periods": list(idp.periods), "totals": list(idp.totals), "status": idp.status,
            "steps": [{"kind": item.kind, "indicator": names.get(item.indicator or "", item.indicator or ""),
                       "status": item.status} for item in items]}


def grade_counts(results: Iterable[MemberResult]) -> list[tuple[str, int]]:
    """Counts per grade, best grade first (S, A, B, C, D; any other grade names after them)."""
    counts: dict[str, int] = defaultdict(int)
    for result in results:
        if result.appraised:  # a member not appraised this period has no grade to count
            counts[result.grade] += 1
    return sorted(counts.items(), key=lambda item: (GRADE_ORDER.find(item[0]) % (len(GRADE_ORDER) + 1), item[0]))


def leniency_view(item: Any) -> dict[str, str] | None:
    if item is None:
        return None
    return {"index": str(item.index), "team_mean": str(item.team_mean), "department_mean": str(item.department_mean)}


def summary_row(result: MemberResult, roster: Roster, shortfall_keys: Sequence[str], idp: bool,
                scheme: Scheme) -> dict[str, Any]:
    """One member's line in the manager's team summary at publication."""
    names = {i.key: i.name for i in scheme.indicators}
    return {"userid": result.member, "name": roster.org.name(result.member), "total": str(result.total),
            "appraised": result.appraised,
            "original_total": str(result.original_total), "grade": result.grade, "rank": result.rank_in_team,
            "calibrated": result.calibration is not None,
            "bonus": str(result.bonus) if result.bonus is not None else "",
            "shortfalls": [names.get(k, k) for k in shortfall_keys], "idp": idp,
            "threshold": number_text(scheme.results.shortfall_threshold)}


def department_views(roster: Roster, final: Mapping[str, MemberResult], computed: Computed,
                     leniency: Mapping[str, Any], held_back: Sequence[str], idps: Mapping[str, Any],
                     shortfalls: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Each department's block of the admins' overview at publication."""
    by_department: dict[str | None, list[MemberResult]] = defaultdict(list)
    for result in final.values():
        if result.appraised:  # not appraised: no total to average, no grade to count
            by_department[result.department].append(result)
    views = []
    for department in sorted(by_department, key=lambda d: d or ""):
        results = by_department[department]
        totals = [r.total for r in results]
        deviations: list[dict[str, str]] = []
        schemes = {computed.schemes[r.member].key: computed.schemes[r.member] for r in results}
        for scheme in schemes.values():
            group = PeriodResults("all", results[0].period, tuple(r for r in results
                                                                   if computed.schemes[r.member].key == scheme.key))
            # Each scheme has its own guidance, so a deviation is said per scheme, of its members only.
            for distribution in grade_distribution(scheme, group):
                deviations.extend({"grade": s.grade, "percent": str(s.percent), "status": s.status,
                                   "limit": str(s.max_percent if s.status == "above" else s.min_percent),
                                   "scheme": scheme.name, "members": distribution.scored}
                                  for s in distribution.deviations)
        teams = sorted((item for item in leniency.values() if item.department == department),
                       key=lambda item: -item.index)
        originals = [r.original_total for r in results]
        views.append({
            "name": roster.department_name(department), "members": len(results),
            "mean": str(round2(sum(totals, Decimal(0)) / len(totals))),
            # The leniency index (and the team summaries) use the totals before calibration: the same number here.
            "original_mean": str(round2(sum(originals, Decimal(0)) / len(originals))),
            "calibrated": sum(1 for r in results if r.calibration is not None),
            "schemes": sorted({computed.schemes[r.member].name for r in results}),
            "grades": grade_counts(results), "deviations": deviations,
            "teams": [{"manager": roster.org.name(item.manager or item.team), "members": item.members,
                       "mean": str(item.team_mean), "index": str(item.index)} for item in teams],
            "held_back": [roster.org.name(u) for u in held_back if roster.departments.get(u) == department],
            "idps": [roster.org.name(u) for u in sorted(idps) if roster.departments.get(u) == department],
            "shortfalls": sum(1 for r in results if shortfalls.get(r.member)),
        })
    return views
