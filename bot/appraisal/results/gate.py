"""The data-quality gate over a computed period: its findings, the results they hold back, and the admins' audited
acceptances that release them (`kpibot results accept`, `/quality accept`)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.appraisal.indicator_sources import data_quality_flags
from bot.appraisal.people import Org
from bot.appraisal.results.compute import Computed, compute, latest_entries, reading
from bot.appraisal.results.quality import FINDING_KINDS, Finding, Jump, Severity, check, finding_text, kind_spec
from bot.appraisal.results.roster import Roster
from bot.appraisal.results.schedule import ResultsError
from bot.appraisal.results.store import key_names
from bot.appraisal.results.views import number_text
from bot.config import Config
from bot.storage.models import AuditEntry, QualityAcceptance
from scoring import WAIVED, Period, PeriodKind

ALL = "*"  # an acceptance of every kind
WORST_SHOWN = 5  # findings named in the admin's one message; the rest are a command away


class AcceptError(ResultsError):
    """An acceptance that cannot be recorded: the sentence for `code` in quality/error.txt.j2 says why."""

    TEMPLATE = "quality/error.txt.j2"


# -- a period's findings ---------------------------------------------------------------------------------------------
def suspicious_jumps(session: Session, computed: Computed, threshold_percent: int) -> list[Jump]:
    """Values that moved more than the threshold since the month before (typos such as 4.6 → 46)."""
    if computed.period.kind is not PeriodKind.MONTH:
        return []
    month, before = str(computed.period), str(computed.period.previous())
    previous, _ = latest_entries(session, list(computed.members), [before])
    limit = Decimal(threshold_percent)
    jumps: list[Jump] = []
    for userid, data in computed.members.items():
        names = key_names(computed.schemes[userid])
        for (key, sub), value in sorted(data.values.items()):
            earlier = previous.get((userid, key, before))
            if sub != month or value is WAIVED or earlier is None or earlier.value is WAIVED or earlier.value == 0:
                continue
            change = (value - earlier.value) * 100 / abs(earlier.value)  # type: ignore[operator]
            if abs(change) > limit and key in names:
                jumps.append(Jump(userid, key, names[key], number_text(earlier.value),  # type: ignore[arg-type]
                                  number_text(value), number_text(round(change, 0))))  # type: ignore[arg-type]
    return jumps


def wecom_flags(session: Session, config: Config, computed: Computed, now: datetime) -> list[Any]:
    """What the WeCom statistics say about the period's data (bot.appraisal.indicator_sources' DataFlags)."""
    today = now.astimezone(config.schedule.zone).date()
    return data_quality_flags(session, computed.schemes, computed.period, today=today)


def no_contact_permission(flags: Sequence[Any], roster: Roster) -> list[str]:
    """Members the statistics sync skipped for lack of customer-contact permission (84074), by name."""
    return [roster.org.name(flag.userid) for flag in flags if getattr(flag, "kind", None) == "no_contact_permission"]


def quality_findings(session: Session, config: Config, computed: Computed, now: datetime, *,
                     jumps: Sequence[Jump] | None = None, flags: Sequence[Any] | None = None) -> list[Finding]:
    """The data-quality checks over a computed period: what the close reports and what holds results back at
    publication."""
    if jumps is None:
        jumps = suspicious_jumps(session, computed, config.results.jump_percent)
    if flags is None:
        flags = wecom_flags(session, config, computed, now)
    return check(session, computed.period, computed.members, computed.schemes,
                 today=now.astimezone(config.schedule.zone).date(), jump_percent=config.results.jump_percent,
                 jumps=jumps, flags=flags)


def finding_names(findings: Iterable[Finding], org: Org) -> dict[str, str]:
    """The name of everyone the findings concern, by userid."""
    return {userid: org.name(userid) for finding in findings for userid in finding.userids}


# -- acceptances -----------------------------------------------------------------------------------------------------
def _covers(kind: str, userid: str | None, finding: Finding) -> bool:
    """Whether an acceptance of `kind` (or ALL) for `userid` (None: everyone) accepts the finding."""
    return kind in (ALL, finding.kind) and (
        userid is None or (not finding.team_wide and userid == finding.userids[0]))


def covered(findings: Iterable[Finding], kind: str, userid: str | None) -> list[Finding]:
    """The findings an acceptance of `kind` for `userid` would accept."""
    return [finding for finding in findings if _covers(kind, userid, finding)]


def acceptances(session: Session, period: str) -> list[QualityAcceptance]:
    return list(session.scalars(select(QualityAcceptance).where(QualityAcceptance.period == period)
                                .order_by(QualityAcceptance.id)))


def accepted(finding: Finding, rows: Iterable[QualityAcceptance]) -> bool:
    return any(_covers(row.kind, row.userid, finding) for row in rows)


def held(findings: Iterable[Finding], rows: Sequence[QualityAcceptance]) -> dict[str, list[Finding]]:
    """The members whose results the open (not accepted) HOLD findings keep back, with those findings."""
    found: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        if finding.holds and not accepted(finding, rows):
            for userid in finding.userids:
                found[userid].append(finding)
    return dict(found)


def require_known_kind(kind: str) -> None:
    if kind != ALL and kind not in FINDING_KINDS:
        raise AcceptError("unknown_kind", kind=kind, kinds=list(FINDING_KINDS))


def accept(session: Session, *, period: str, kind: str, userid: str | None, reason: str, actor: str,
           now: datetime) -> QualityAcceptance:
    """Record (and audit) an admin's acceptance of `kind` (or ALL) findings of `period` for one member or all."""
    require_known_kind(kind)
    if not reason.strip():
        raise AcceptError("reason_missing")
    row = QualityAcceptance(period=period, kind=kind, userid=userid, reason=reason.strip(), accepted_by=actor,
                            accepted_at=now, released_at=None)
    session.add(row)
    session.add(AuditEntry(at=now, actor=actor, action="quality.accept", subject=userid or period, detail={
        "period": period, "kind": kind, "userid": userid, "reason": reason.strip()}))
    return row


def mark_released(session: Session, rows: Sequence[QualityAcceptance], now: datetime) -> None:
    """A publication took these acceptances into account: none of them waits for a release any more (one made
    while it ran is not among them and still gets its own)."""
    ids = [row.id for row in rows]
    if ids:
        session.execute(update(QualityAcceptance).where(QualityAcceptance.id.in_(ids),
                                                        QualityAcceptance.released_at.is_(None))
                        .values(released_at=now))


def pending_releases(session: Session) -> list[QualityAcceptance]:
    return list(session.scalars(select(QualityAcceptance).where(QualityAcceptance.released_at.is_(None))
                                .order_by(QualityAcceptance.id)))


# -- what people read ------------------------------------------------------------------------------------------------
def summary(findings: Sequence[Finding], rows: Sequence[QualityAcceptance], names: Mapping[str, str],
            locale: str = "zh_CN", shown: int = WORST_SHOWN) -> dict[str, Any]:
    """What the admin's one message says: counts by kind, the worst few explained, how many results are held."""
    counts: dict[str, list[int]] = {}
    for finding in findings:
        counts.setdefault(finding.kind, [0, 0])
        counts[finding.kind][0] += 1
        if accepted(finding, rows):
            counts[finding.kind][1] += 1
    open_findings = [f for f in findings if not accepted(f, rows)]
    return {
        "total": len(findings), "open": len(open_findings),
        "kinds": [{"kind": kind, "count": n, "accepted": a, "holds": kind_spec(kind).severity is Severity.HOLD}
                  for kind, (n, a) in sorted(counts.items(), key=lambda item: kind_spec(item[0]).rank)],
        "worst": [finding_text(f, names, locale) for f in open_findings[:shown]],
        "more": max(0, len(open_findings) - shown),
        "held": len(held(findings, rows)),
    }


@dataclass
class PeriodQuality:
    """The gate's findings about a period as of now, with the acceptances recorded for it."""

    period: Period
    findings: list[Finding]
    accepted: list[QualityAcceptance]
    roster: Roster

    def names(self) -> dict[str, str]:
        return finding_names(self.findings, self.roster.org)

    def summary(self, config: Config, shown: int = WORST_SHOWN) -> dict[str, Any]:
        return summary(self.findings, self.accepted, self.names(), config.bot.locale, shown)


def period_quality(source: Session | sessionmaker[Session], config: Config, period: Period, now: datetime
                   ) -> PeriodQuality:
    with reading(source) as session:
        roster = Roster.load(session, config)
    computed = compute(source, config, period, roster=roster)
    with reading(source) as session:
        findings = quality_findings(session, config, computed, now)
        rows = acceptances(session, str(period))
    return PeriodQuality(period, findings, rows, roster)
