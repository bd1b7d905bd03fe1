"""The publication: freeze the month's results (and the quarter's and year's it ends), open IDPs, and push each
member their result, each manager a team summary and the admins an overview (a year: the promotion list)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.appraisal.results.compute import Computed, Progress, compute
from bot.appraisal.results.gate import (PeriodQuality, acceptances, held, mark_released, pending_releases,
                                        quality_findings)
from bot.appraisal.results.roster import Roster
from bot.appraisal.results.schedule import last_month_of, month_to_close, periods_closing_with
from bot.appraisal.results.steps import in_chunks, send
from bot.appraisal.results.store import (freeze, period_state, published_results, result_from_json, set_state,
                                         stored_results, team_sizes, upsert)
from bot.appraisal.results.views import (department_views, grade_counts, idp_view, leniency_view, number_text,
                                         period_label, result_view, summary_row)
from bot.config import Config
from bot.storage.db import transaction
from bot.storage.models import AuditEntry, Idp, IdpItem
from scoring import (Dimension, IndicatorStatus, MemberResult, Period, PeriodKind, PeriodResults, Scheme,
                     behavior_shortfalls, idp_triggers, leniency_indexes, promotion_list)

IDP_ITEM_KINDS = ("training", "mentorship", "review")
# A performance indicator under this score is named in the member's suggestions (at most the two weakest).
IMPROVE_BELOW = Decimal(80)


@dataclass
class PublishReport:
    periods: list[str]
    published: int
    frozen_before: int
    held_back: int
    idps: int
    members_messaged: int
    managers_messaged: int
    doubtful: int = 0  # of held_back: complete, but held by the data-quality gate


@dataclass
class Publication:
    """One period being published: the results that count (frozen before, or complete and trusted now), those held
    back, what they trigger, and what the steps did."""

    config: Config
    now: datetime
    period: Period
    roster: Roster
    computed: Computed
    quality: PeriodQuality
    final: dict[str, MemberResult]
    held_back: list[str]  # incomplete, or doubted by the data-quality gate: stored as drafts, not pushed
    frozen_before: int
    shortfalls: dict[str, list[str]]  # behaviour indicators below the scheme's threshold, per member
    idps: dict[str, Any]  # the IDP trigger per member who gets one
    promotions: list[Any]
    combined: PeriodResults
    frozen: dict[str, dict[str, Any]] = field(default_factory=dict)  # what freeze_results stored, for push_members
    opened: dict[str, Idp] = field(default_factory=dict)  # IDPs freeze_results opened, for push_members
    published: int = 0
    idps_opened: int = 0
    members_messaged: int = 0
    managers_messaged: int = 0
    waiting: set[str] = field(init=False)
    team_sizes: dict[str | None, int] = field(init=False)
    leniency: dict[str, Any] = field(init=False)  # the teams' leniency indexes (totals before calibration)

    def __post_init__(self) -> None:
        self.waiting = set(self.held_back)
        self.team_sizes = team_sizes(self.final.values())
        self.leniency = {item.team: item for item in leniency_indexes(self.combined)}

    @property
    def text(self) -> str:
        return str(self.period)

    @property
    def doubtful(self) -> list[str]:
        """The held-back members whose results are complete: the gate holds them."""
        return [u for u in self.held_back if self.computed.results[u].complete]


def publish(sessions: sessionmaker[Session], config: Config, now: datetime, month_text: str, *,
            as_of: datetime | None = None, progress: Progress | None = None) -> PublishReport:
    """Freeze and push the month's results (and the quarter's and year's it ends): each member their own result,
    each manager a team summary, the admins a department overview (and, for a year, the promotion list); open
    IDPs. Every message has a per-recipient key, so running this again (forced, after a restart, from a second
    instance) sends nothing twice; results already published are never recomputed."""
    month = month_to_close(month_text, config, as_of or now)
    report = PublishReport([], 0, 0, 0, 0, 0, 0)
    for period in periods_closing_with(month):
        publication = compute_publication(sessions, config, now, period, progress)
        in_chunks(sessions, list(publication.computed.results), publication, freeze_results, push_members,
                  stage="publish", progress=progress)
        managers = publication.roster.managers_of(publication.computed.results)
        in_chunks(sessions, managers, publication, push_managers, stage="summaries", progress=progress)
        with transaction(sessions) as session:
            push_admins(session, publication)
        _count(report, publication)
    return report


def release_accepted(sessions: sessionmaker[Session], config: Config, now: datetime) -> list[str]:
    """Publish what acceptances released in periods already published (publishing again is idempotent: only the
    results now free go out); returns the periods re-published. Acceptances of periods not yet published wait for
    the scheduled publication, which reads them."""
    with transaction(sessions) as session:
        pending = pending_releases(session)
        states = {row.period: period_state(session, row.period) for row in pending}
    periods = sorted({row.period for row in pending
                      if (state := states[row.period]) is not None and state.state == "published"})
    for text in periods:
        publish(sessions, config, now, str(last_month_of(Period.parse(text))))  # marks the acceptances released
    return periods


# -- the steps -------------------------------------------------------------------------------------------------------
def compute_publication(sessions: sessionmaker[Session], config: Config, now: datetime, period: Period,
                        progress: Progress | None) -> Publication:
    """The results that count and what they trigger; results already published stay as they were frozen."""
    text = str(period)
    with transaction(sessions) as session:
        roster = Roster.load(session, config)
    computed = compute(sessions, config, period, roster=roster, progress=progress)
    with transaction(sessions) as session:
        stored = stored_results(session, text, list(computed.results))
        previous = published_results(session, period.previous()) if period.kind is PeriodKind.MONTH else []
        quality = PeriodQuality(period, quality_findings(session, config, computed, now), acceptances(session, text),
                                roster)
    # Results the gate doubts wait, like incomplete ones, until the data is fixed, waived or accepted.
    doubtful = held(quality.findings, quality.accepted)
    final: dict[str, MemberResult] = {}
    held_back: list[str] = []
    frozen_before = 0
    for userid, result in computed.results.items():
        row = stored.get(userid)
        if row is not None and row.status == "published":
            final[userid] = result_from_json(row.data["result"])
            frozen_before += 1
        elif result.complete and userid not in doubtful:
            final[userid] = result
        else:
            held_back.append(userid)
    combined = PeriodResults("all", period, tuple(final[u] for u in sorted(final)))
    shortfalls, idps, promotions = _triggered(computed, final, combined, previous)
    return Publication(config, now, period, roster, computed, quality, final, held_back, frozen_before, shortfalls,
                       idps, promotions, combined)


def _triggered(computed: Computed, final: dict[str, MemberResult], combined: PeriodResults,
               previous: list[MemberResult]) -> tuple[dict[str, list[str]], dict[str, Any], list[Any]]:
    """What the results trigger (behaviour shortfalls, IDPs, a year's promotion list), each member under their own
    scheme's rules."""
    period = combined.period
    shortfalls: dict[str, list[str]] = defaultdict(list)
    idps: dict[str, Any] = {}
    promotions: list[Any] = []
    by_scheme: dict[str, list[str]] = defaultdict(list)
    for userid in final:
        by_scheme[computed.schemes[userid].key].append(userid)
    for group in by_scheme.values():
        scheme = computed.schemes[group[0]]
        members = set(group)
        for shortfall in behavior_shortfalls(scheme, combined):
            if shortfall.member in members:
                shortfalls[shortfall.member].append(shortfall.indicator)
        if period.kind is PeriodKind.MONTH and previous:
            earlier = PeriodResults("all", period.previous(), tuple(previous))
            for trigger in idp_triggers(scheme, [earlier, combined]):
                if trigger.member in members:
                    idps[trigger.member] = trigger
        if period.kind is PeriodKind.YEAR:
            promotions.extend(c for c in promotion_list(scheme, combined) if c.member in members)
    return shortfalls, idps, promotions


def freeze_results(session: Session, publication: Publication, userids: list[str]) -> None:
    """Store the results that count as published (opening the IDPs they trigger) and those held back as drafts."""
    computed, roster, now = publication.computed, publication.roster, publication.now
    existing = stored_results(session, publication.text, userids)
    for userid in userids:
        scheme, row = computed.schemes[userid], existing.get(userid)
        if userid in publication.waiting:
            draft = computed.results[userid]
            frozen = freeze(draft, scheme, roster, computed.comments.get(userid, ()), 0)
            upsert(session, row, draft, scheme, frozen, "draft", now)
            continue
        if row is not None and row.status == "published":
            publication.frozen[userid] = row.data
            continue
        result = publication.final[userid]
        idp = _open_idp(session, publication, userid, result) if userid in publication.idps else None
        suggestions = _suggestions(result, scheme, publication.shortfalls.get(userid, ()), idp is not None)
        frozen = freeze(result, scheme, roster, computed.comments.get(userid, ()),
                        publication.team_sizes.get(result.team, 0), suggestions)
        upsert(session, row, result, scheme, frozen, "published", now)
        publication.published += 1
        publication.frozen[userid] = frozen
        if idp is not None:
            publication.opened[userid] = idp
            publication.idps_opened += 1


def push_members(session: Session, publication: Publication, userids: list[str]) -> None:
    """Each member whose result counts: their own result, after the IDP it opened (also told to their manager)."""
    config = publication.config
    for userid in userids:
        if userid in publication.waiting:
            continue
        idp = publication.opened.pop(userid, None)
        if idp is not None:
            _announce_idp(session, publication, userid, idp)
        frozen = publication.frozen.pop(userid)
        # Only the member themself receives their result (permissions: a member sees only their own).
        if publication.roster.org.can_see(userid, userid):
            send(session, config, f"publish:{publication.text}:member:{userid}", userid, "results/member_result.md.j2",
                 publication.now, r=result_view(frozen), pass_line=config.results.pass_line)
            publication.members_messaged += 1


def push_managers(session: Session, publication: Publication, managers: list[str]) -> None:
    """Each manager's team summary: ranks, grades, leniency, who is held back and why."""
    computed, roster, config, final = publication.computed, publication.roster, publication.config, publication.final
    waiting = publication.waiting
    for manager in managers:
        team = roster.rated_by(manager)
        rows = [summary_row(final[u], roster, publication.shortfalls.get(u, ()), u in publication.idps,
                            computed.schemes[u]) for u in team if u in final]
        rows.sort(key=lambda row: (row["rank"] or 10 ** 6, row["userid"]))
        missing = [roster.org.name(u) for u in team if u in waiting and not computed.results[u].complete]
        doubted = [roster.org.name(u) for u in team if u in waiting and computed.results[u].complete]
        send(session, config, f"publish:{publication.text}:manager:{manager}", manager, "results/team_summary.md.j2",
             publication.now, manager=roster.org.name(manager), period=publication.text,
             period_label=period_label(publication.period), rows=rows,
             grades=grade_counts(final[u] for u in team if u in final),
             leniency=leniency_view(publication.leniency.get(manager)), held_back=missing, doubtful=doubted,
             below=[row for row in rows if row["appraised"] and Decimal(row["total"]) < config.results.pass_line],
             pass_line=config.results.pass_line)
        publication.managers_messaged += 1


def push_admins(session: Session, publication: Publication) -> None:
    """The last step, in one transaction: the period marked published and its acceptances released, each admin's
    overview (and a year's promotion list), the audit entry."""
    roster, config, now, text = publication.roster, publication.config, publication.now, publication.text
    set_state(session, text, "published", now)
    mark_released(session, publication.quality.accepted, now)
    departments = department_views(roster, publication.final, publication.computed, publication.leniency,
                                   publication.held_back, publication.idps, publication.shortfalls)
    quality = publication.quality.summary(config)
    doubtful = len(publication.doubtful)
    for admin in roster.admins:
        send(session, config, f"publish:{text}:admin:{admin}", admin, "results/admin_overview.md.j2", now,
             admin=roster.org.name(admin), period=text, period_label=period_label(publication.period),
             departments=departments, published=len(publication.final),
             held_back=len(publication.held_back) - doubtful, doubtful=doubtful, quality=quality)
        if publication.period.kind is PeriodKind.YEAR:
            candidates = [{"name": roster.org.name(c.member), "department": roster.department_name(c.department),
                           "total": str(c.total), "rank": c.rank,
                           "team": roster.org.name(roster.team(c.member))} for c in publication.promotions]
            send(session, config, f"publish:{text}:promotion:{admin}", admin, "results/promotion.md.j2", now,
                 admin=roster.org.name(admin), period=text, period_label=period_label(publication.period),
                 candidates=candidates)
    session.add(AuditEntry(at=now, actor="system", action="results.publish", subject=text, detail={
        "published": len(publication.final), "held_back": len(publication.held_back),
        "idps": len(publication.idps), "findings": len(publication.quality.findings), "doubtful": doubtful}))


def _count(report: PublishReport, publication: Publication) -> None:
    report.periods.append(publication.text)
    report.published += publication.published
    report.frozen_before += publication.frozen_before
    report.held_back += len(publication.held_back)
    report.doubtful += len(publication.doubtful)
    report.idps += publication.idps_opened
    report.members_messaged += publication.members_messaged
    report.managers_messaged += publication.managers_messaged


# -- IDPs and suggestions --------------------------------------------------------------------------------------------
def _open_idp(session: Session, publication: Publication, userid: str, result: MemberResult) -> Idp:
    """Open the IDP a trigger calls for, once: the unique (member, month) makes a re-run find it instead."""
    existing = session.scalar(select(Idp).where(Idp.userid == userid, Idp.opened_for == publication.text))
    if existing is not None:
        return existing
    trigger, now = publication.idps[userid], publication.now
    idp = Idp(userid=userid, manager_userid=publication.roster.team(userid), opened_for=publication.text,
              periods=list(trigger.periods), totals=[str(total) for total in trigger.totals], status="open",
              opened_at=now, closed_at=None)
    session.add(idp)
    session.flush()
    weakest = _weakest_performance(result)
    for kind in IDP_ITEM_KINDS:
        session.add(IdpItem(idp_id=idp.id, kind=kind, indicator=weakest if kind == "training" else None,
                            status="open", created_at=now, done_at=None))
    session.add(AuditEntry(at=now, actor="system", action="idp.open", subject=userid,
                           detail={"periods": list(trigger.periods), "totals": [str(t) for t in trigger.totals]}))
    return idp


def _announce_idp(session: Session, publication: Publication, userid: str, idp: Idp) -> None:
    roster, config, now = publication.roster, publication.config, publication.now
    names = {i.key: i.name for i in publication.computed.schemes[userid].indicators}
    view = idp_view(session, idp, names, roster.org.name(userid), roster.org.name(idp.manager_userid))
    send(session, config, f"idp:{idp.opened_for}:{userid}:member", userid, "results/idp_opened.txt.j2", now,
         idp=view, audience="member")
    manager = idp.manager_userid
    if manager and roster.org.can_see(manager, userid):
        send(session, config, f"idp:{idp.opened_for}:{userid}:manager", manager, "results/idp_opened.txt.j2", now,
             idp=view, audience="manager")


def _suggestions(result: MemberResult, scheme: Scheme, shortfall_keys: Sequence[str], idp_opened: bool
                 ) -> list[dict[str, Any]]:
    names = {i.key: i.name for i in scheme.indicators}
    found: list[dict[str, Any]] = []
    performance = [i for i in result.indicators if i.dimension == Dimension.PERFORMANCE
                   and i.status is IndicatorStatus.SCORED and i.score is not None and i.score < IMPROVE_BELOW]
    for item in sorted(performance, key=lambda i: (i.score, i.key))[:2]:
        found.append({"kind": "improve", "name": names.get(item.key, item.key), "score": str(item.score)})
    for key in shortfall_keys:
        found.append({"kind": "project", "name": names.get(key, key), "score": str(result.indicator(key).score),
                      "threshold": number_text(scheme.results.shortfall_threshold)})
    if idp_opened:
        found.append({"kind": "idp", "name": "", "score": ""})
    return found


def _weakest_performance(result: MemberResult) -> str | None:
    scored = [i for i in result.indicators if i.dimension == Dimension.PERFORMANCE
              and i.status is IndicatorStatus.SCORED and i.score is not None]
    return min(scored, key=lambda i: (i.score, i.key)).key if scored else None
