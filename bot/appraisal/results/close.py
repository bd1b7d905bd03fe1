"""The month close: compute the month's results (and the quarter's and year's it ends) as drafts, check the data,
freeze the drafts, and push each manager the draft team table and each admin the close's summary."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.appraisal.results.compute import Computed, Progress, compute
from bot.appraisal.results.gate import (PeriodQuality, acceptances, held, no_contact_permission, quality_findings,
                                        suspicious_jumps, wecom_flags)
from bot.appraisal.results.quality import Finding, Jump
from bot.appraisal.results.roster import Roster
from bot.appraisal.results.schedule import month_to_close, periods_closing_with, publish_moment
from bot.appraisal.results.steps import in_chunks, send
from bot.appraisal.results.store import freeze, period_state, set_state, stored_results, team_sizes, upsert
from bot.appraisal.results.views import draft_row, period_label, problem_views
from bot.appraisal.workcalendar import local
from bot.config import Config
from bot.storage.db import transaction
from bot.storage.models import AuditEntry
from scoring import Period

# Members named in an admin's close message; the rest are counted and one command away.
ADMIN_NAMES_SHOWN = 5


@dataclass
class CloseReport:
    periods: list[str]
    members: int
    complete: int
    incomplete: int
    jumps: int
    managers: int
    skipped: list[str]  # periods already published
    findings: int = 0  # the data-quality gate's findings
    doubtful: int = 0  # results its findings would hold back


@dataclass
class Closing:
    """One period being closed: its drafts as computed, what the data-quality checks found, when it publishes."""

    config: Config
    now: datetime
    period: Period
    roster: Roster
    computed: Computed
    jumps: list[Jump]
    flags: list[Any]
    quality: PeriodQuality
    publish_at: datetime | None  # None: not announced (closed late by hand, after the scheduled time)
    doubtful: dict[str, list[Finding]] = field(init=False)  # results the findings would hold back at publication
    jumps_by_member: dict[str, list[Jump]] = field(init=False)
    team_sizes: dict[str | None, int] = field(init=False)

    def __post_init__(self) -> None:
        self.doubtful = held(self.quality.findings, self.quality.accepted)
        self.team_sizes = team_sizes(self.computed.results.values())
        self.jumps_by_member = defaultdict(list)
        for jump in self.jumps:
            self.jumps_by_member[jump.userid].append(jump)

    @property
    def text(self) -> str:
        return str(self.period)


def close_month(sessions: sessionmaker[Session], config: Config, now: datetime, month_text: str, *,
                as_of: datetime | None = None, progress: Progress | None = None) -> CloseReport:
    """Compute every member's result of the month (and the quarter and year it ends) as drafts, run the
    data-quality check and send each manager the draft team table with what is missing."""
    month = month_to_close(month_text, config, as_of or now)
    report = CloseReport([], 0, 0, 0, 0, 0, [])
    for period in periods_closing_with(month):
        closing = compute_close(sessions, config, now, period, progress)
        if closing is None:
            report.skipped.append(str(period))
            continue
        managers = closing.roster.managers_of(closing.computed.results)
        in_chunks(sessions, list(closing.computed.results), closing, freeze_drafts, stage="save", progress=progress)
        in_chunks(sessions, managers, closing, push_manager_drafts, stage="drafts", progress=progress)
        with transaction(sessions) as session:
            push_admins(session, closing)
        _count(report, closing, managers)
    return report


def compute_close(sessions: sessionmaker[Session], config: Config, now: datetime, period: Period,
                  progress: Progress | None) -> Closing | None:
    """The period's results as drafts, with the data-quality findings; None when it is published (frozen)."""
    with transaction(sessions) as session:
        state = period_state(session, str(period))
        if state is not None and state.state == "published":
            return None
        roster = Roster.load(session, config)
    computed = compute(sessions, config, period, roster=roster, progress=progress)
    with transaction(sessions) as session:
        jumps = suspicious_jumps(session, computed, config.results.jump_percent)
        flags = wecom_flags(session, config, computed, now)
        findings = quality_findings(session, config, computed, now, jumps=jumps, flags=flags)
        quality = PeriodQuality(period, findings, acceptances(session, str(period)), roster)
    publish_at = publish_moment(config, period)
    if publish_at is not None and publish_at <= now:
        publish_at = None  # closed late by hand: the scheduled time has passed, say nothing about it
    return Closing(config, now, period, roster, computed, jumps, flags, quality, publish_at)


def freeze_drafts(session: Session, closing: Closing, userids: list[str]) -> None:
    """Store the members' results as drafts; a result already published stays frozen."""
    computed, sizes = closing.computed, closing.team_sizes
    stored = stored_results(session, closing.text, userids)
    for userid in userids:
        row = stored.get(userid)
        if row is not None and row.status == "published":
            continue  # frozen
        result, scheme = computed.results[userid], computed.schemes[userid]
        frozen = freeze(result, scheme, closing.roster, computed.comments.get(userid, ()), sizes.get(result.team, 0))
        upsert(session, row, result, scheme, frozen, "draft", closing.now)


def push_manager_drafts(session: Session, closing: Closing, managers: list[str]) -> None:
    """Each manager's draft team table: totals, what is missing, values that jumped, results held in doubt."""
    computed, roster, config = closing.computed, closing.roster, closing.config
    for manager in managers:
        rows = [draft_row(computed, roster, userid, closing.jumps_by_member.get(userid, []),
                          held=userid in closing.doubtful)
                for userid in roster.rated_by(manager) if userid in computed.results]
        rows.sort(key=lambda row: (not row["complete"], -Decimal(row["total"]), row["userid"]))
        send(session, config, f"close:{closing.text}:manager:{manager}", manager, "results/close_manager.md.j2",
             closing.now, manager=roster.org.name(manager), period=closing.text,
             period_label=period_label(closing.period), rows=rows, publish_at=local(config, closing.publish_at),
             pass_line=config.results.pass_line)


def push_admins(session: Session, closing: Closing) -> None:
    """The last step, in one transaction: the period marked closed, each admin's one message, the audit entry."""
    computed, roster, config = closing.computed, closing.roster, closing.config
    set_state(session, closing.text, "closed", closing.now)
    results = list(computed.results.values())
    incomplete = [draft_row(computed, roster, r.member, closing.jumps_by_member.get(r.member, []))
                  for r in results if not r.complete]
    quality = closing.quality.summary(config)
    # One message per admin: counts and the worst few; the full lists are a command (or an export) away.
    for admin in roster.admins:
        send(session, config, f"close:{closing.text}:admin:{admin}", admin, "results/close_admin.md.j2", closing.now,
             admin=roster.org.name(admin), period=closing.text, period_label=period_label(closing.period),
             members=len(results), complete=len(results) - len(incomplete),
             incomplete=incomplete[:ADMIN_NAMES_SHOWN], more=max(0, len(incomplete) - ADMIN_NAMES_SHOWN),
             problems=problem_views(computed.problems), quality=quality,
             no_contact_permission=no_contact_permission(closing.flags, roster),
             ignored=[roster.org.name(u) for u in computed.ignored_calibrations],
             publish_at=local(config, closing.publish_at))
    session.add(AuditEntry(at=closing.now, actor="system", action="results.close", subject=closing.text, detail={
        "members": len(results), "complete": len(results) - len(incomplete), "jumps": len(closing.jumps),
        "findings": len(closing.quality.findings), "doubtful": len(closing.doubtful)}))


def _count(report: CloseReport, closing: Closing, managers: list[str]) -> None:
    results = closing.computed.results.values()
    report.periods.append(closing.text)
    report.members += len(results)
    report.complete += sum(1 for r in results if r.complete)
    report.incomplete += sum(1 for r in results if not r.complete)
    report.jumps += len(closing.jumps)
    report.findings += len(closing.quality.findings)
    report.doubtful += len(closing.doubtful)
    report.managers += len(managers)
