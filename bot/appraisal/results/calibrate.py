"""Calibration: a manager's adjusted total during the window between the close and the publication."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.results.compute import compute, latest_calibrations
from bot.appraisal.results.roster import Roster
from bot.appraisal.results.schedule import ResultsError, close_moment
from bot.appraisal.results.store import key_names, period_state
from bot.appraisal.results.views import missing_label, number_text
from bot.appraisal.workcalendar import local
from bot.config import Config
from bot.storage.models import AuditEntry, ResultCalibration, ResultPeriod
from scoring import Calibration, Period, PeriodKind, PeriodResults, check_calibrations


@dataclass(frozen=True)
class Calibrated:
    period: str
    original_total: str
    adjusted_total: str
    original_grade: str
    adjusted_grade: str
    previous: str | None  # the total of an earlier calibration this one replaces


def calibrate(session: Session, config: Config, roster: Roster, *, userid: str, period: Period,
              total: Decimal, reason: str, actor: str, now: datetime) -> Calibrated:
    """Record an adjusted total during the calibration window; raises ResultsError saying why not otherwise."""
    text = str(period)
    state = period_state(session, text)
    if state is None:
        raise ResultsError("calibrate.not_closed", period=text, close_at=local(config, close_moment(config, period)))
    if state.state == "published":
        raise ResultsError("calibrate.published", period=text)
    if not reason.strip():
        raise ResultsError("calibrate.reason_missing")
    computed = compute(session, config, period, roster=roster, userids=[userid], calibrate=False)
    result = computed.results[userid]
    scheme = computed.schemes[userid]
    rounded = total.quantize(Decimal("0.01"))
    problems = check_calibrations(scheme, PeriodResults(scheme.key, period, (result,)),
                                  [Calibration(userid, rounded, reason, actor)])
    for problem in problems:
        if problem.code == "calibration.incomplete_result":
            names = key_names(scheme)
            raise ResultsError("calibrate.incomplete", name=roster.org.name(userid),
                               missing=[missing_label(label, names) for label in result.missing])
        if problem.code == "calibration.not_appraised":
            raise ResultsError("calibrate.not_appraised", name=roster.org.name(userid), period=text)
        if problem.code == "calibration.total_out_of_range":
            raise ResultsError("calibrate.out_of_range", total=str(rounded), high=number_text(scheme.max_score))
    earlier = latest_calibrations(session, text, [userid]).get(userid)
    session.add(ResultCalibration(userid=userid, period=text, adjusted_total=str(rounded),
                                  original_total=str(result.total), reason=reason.strip(), author=actor,
                                  created_at=now))
    session.add(AuditEntry(at=now, actor=actor, action="calibrate", subject=userid, detail={
        "period": text, "original_total": str(result.total), "adjusted_total": str(rounded), "reason": reason.strip(),
        "previous": earlier.adjusted_total if earlier else None}))
    return Calibrated(text, str(result.total), str(rounded), result.grade, scheme.grade_for(rounded),
                      earlier.adjusted_total if earlier else None)


def calibration_period(session: Session) -> Period | None:
    """The month in its calibration window (closed, not yet published), the latest if several."""
    rows = session.scalars(select(ResultPeriod.period).where(ResultPeriod.state == "closed")).all()
    months = sorted((Period.parse(p) for p in rows if Period.parse(p).kind is PeriodKind.MONTH),
                    key=lambda p: (p.year, p.index))
    return months[-1] if months else None


def default_calibration_month(session: Session, month: Period) -> Period:
    """The month /calibrate means: the one in its calibration window; else the appraisal month, or the month
    before it when only that one has been closed (so a late calibration hears that it was published)."""
    open_month = calibration_period(session)
    if open_month is not None:
        return open_month
    if period_state(session, str(month)) is None and period_state(session, str(month.previous())) is not None:
        return month.previous()
    return month
