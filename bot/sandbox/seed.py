"""What the sandbox holds before anyone types: the sample organisation, its history, one seed step per flow.

Each step is a plain function of a SeedContext, listed in SEED_STEPS in the order they run.

* A step that writes to the database runs once per data dir; its name is then remembered in the data
  dir's sandbox-state.json, so a step added later still runs when an existing sandbox restarts.
* A step marked `every_start` fills in-memory state (the fake WeCom's) and runs at every start.
* A step must be idempotent where it can (a crash between the step and saving the state reruns it),
  must not depend on the wall clock (use `ctx.now` and `ctx.history_months`), and must not message
  anyone: history is what people would have seen in earlier months, not news.

The history (bot.sandbox.demo_history generates it; the steps below store it):

* `weekly_reports`: a report for every member and every week of about the last quarter, a few late, a couple
  missing, so /report history, the managers' views and /score's highlights have something to show;
* `kpi_data`: WeCom's customer-contact figures pulled into storage by the real statistics pull (the fake serves
  them, `contact_statistics`), and every number the bot cannot measure itself (/data, imports: each scheme's
  indicators and companion metrics not fed by `wecom.*`, OKR or 360) for the history months, the current month
  and their quarters, so the month close people jump to next has complete results;
* `reviews`: the self-reviews of the history months and the managers' ratings (/score) of the history months and
  the current one;
* `published_results`: each history month closed and published through bot.appraisal.results, at the moments the schedule
  would have done it. Those runs queue the messages they always queue (drafts, results, summaries, IDPs); here
  they are recorded as delivered in the same transaction as the results, so the sender never sees them: people
  find three published months in /result, /team and /score, not three months of pushes at start.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.appraisal.results import close, publish, schedule, store
from bot.appraisal.assignment import behaviour_indicators_due, cycles_due
from bot.appraisal.entries import is_manager_rated, period_of_cycle, record
from bot.appraisal.indicator_sources import source_kind
from bot.appraisal.people import active_members
from bot.appraisal.results.compute import SELF_REVIEW_SOURCES
from bot.appraisal.results.roster import Roster
from bot.appraisal.wecom_stats import members_to_sync, sync_stats, sync_window
from bot.appraisal.workcalendar import (next_workday, review_prompt_day, shift_week, week_of, weekly_deadline,
                                        weekly_prompt_time)
from bot.sandbox import demo_history, demo_org, demo_stats
from bot.sandbox.state import SandboxState
from bot.storage.db import transaction
from bot.storage.models import DataEntry, Member, OutboxMessage, SelfReview, WeeklyReport
from scoring import Cycle, Period
from scoring.wecom_metrics import METRIC_KEYS

if TYPE_CHECKING:
    from bot.app import KpiBot
    from bot.clock import Clock
    from bot.config import Config
    from bot.fakes.wecom import FakeWeCom
    from scoring import Scheme

log = logging.getLogger(__name__)

HISTORY_MONTHS = 3
REPORT_WEEKS = 13  # about a quarter of weekly reports


@dataclass(frozen=True)
class SeedContext:
    """What a seed step may use: the running bot (its sessions, config, clock), the fake and the sample org."""

    bot: KpiBot
    fake: FakeWeCom
    clock: Clock

    @property
    def now(self) -> datetime:
        """Sandbox time, in the schedule's zone."""
        return self.clock.now().astimezone(self.bot.config.schedule.zone)

    @property
    def history_months(self) -> tuple[str, ...]:
        """The months before the current one, oldest first, e.g. ("2026-08", "2026-09", "2026-10")."""
        return previous_months(self.now.date(), HISTORY_MONTHS)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction for a step's writes (steps do not open sessions any other way)."""
        with transaction(self.bot.sessions) as session:
            yield session

    def random(self, *salt: object) -> random.Random:
        """A generator seeded by the salt: the same sandbox gets the same history every time."""
        return random.Random("|".join(str(part) for part in salt))


@dataclass(frozen=True)
class SeedStep:
    name: str
    run: Callable[[SeedContext], None]
    every_start: bool = False  # in-memory state (the fake's) is rebuilt at each start


def previous_months(today: date, count: int) -> tuple[str, ...]:
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        months.append(f"{year:04d}-{month:02d}")
    return tuple(reversed(months))


# ---------------------------------------------------------------- the steps


def seed_org(ctx: SeedContext) -> None:
    """The sample organisation, through the real org sync from the fake's contacts API."""
    # The fake is new at every start: a token cached by an earlier run (still valid in sandbox time when the
    # sandbox is restarted soon after) was issued by a fake that is gone, and this one would refuse it.
    ctx.bot.client.forget_token(ctx.bot.client.current_token())
    ctx.bot.sync_org()


def _first_data_day(ctx: SeedContext) -> date:
    """The first day the history needs figures for: the start of the quarter of the first history month, within
    the 180 days WeCom keeps (bot.appraisal.wecom_stats.sync_window)."""
    today = ctx.now.date()
    first = date.fromisoformat(demo_history.data_months(today, ctx.history_months)[0] + "-01")
    return max(first, sync_window(today)[0])


def seed_contact_statistics(ctx: SeedContext) -> None:
    """The sample team's customer-contact and customer-group figures in the fake (bot.sandbox.demo_stats), covering
    the history's months (and the quarter they start in) and going on after today, so the nightly pull keeps
    finding plausible days as sandbox time moves; one day of the current month is broken on purpose for the
    data-quality gate to find."""
    today = ctx.now.date()
    demo_stats.populate(ctx.fake, today, days=(today - _first_data_day(ctx)).days, ahead=demo_stats.AHEAD_DAYS)
    demo_stats.break_one_day(ctx.fake, today)


def _people(session: Session, config: Config) -> list[tuple[Member, Scheme, str | None]]:
    """Every active member with their scheme and the manager who rates them (None at the top)."""
    roster = Roster.load(session, config)
    return [(member, roster.scheme(member.userid), roster.team(member.userid)) for member in active_members(session)]


def seed_weekly_reports(ctx: SeedContext) -> None:
    """A submitted report per member for each of the last 13 weeks whose deadline has passed."""
    config = ctx.bot.config
    rules, zone = config.weekly_report, config.schedule.zone
    weeks = []
    this_week = week_of(ctx.now.date())
    for back in range(REPORT_WEEKS, 0, -1):
        week = shift_week(this_week, -back)
        prompted, deadline = weekly_prompt_time(week, rules, zone), weekly_deadline(week, rules, zone)
        if prompted is not None and deadline is not None and deadline < ctx.now:
            weeks.append(demo_history.ReportWeek(week, prompted, deadline))
    keys = {question.key for question in rules.questions}
    with ctx.session() as session:
        userids = [member.userid for member, _, _ in _people(session, config)]
        existing = set(session.execute(select(WeeklyReport.userid, WeeklyReport.week)).all())
        for seed in demo_history.weekly_reports(userids, weeks):
            if (seed.userid, seed.week) in existing:
                continue
            session.add(WeeklyReport(userid=seed.userid, week=seed.week, status="submitted", late=seed.late,
                                     answers={k: v for k, v in seed.answers.items() if k in keys},
                                     created_at=seed.submitted_at, updated_at=seed.submitted_at,
                                     submitted_at=seed.submitted_at, edited_at=None))


def seed_kpi_data(ctx: SeedContext) -> None:
    """WeCom's figures through the real statistics pull, then every number typed in or imported (bot.appraisal.entries),
    for the history months, the current month and their quarters."""
    config = ctx.bot.config
    yesterday = ctx.now.date() - timedelta(days=1)
    with ctx.session() as session:
        userids = members_to_sync(session, config)
    with ctx.session() as session:
        sync_stats(session, ctx.bot.client, userids, _first_data_day(ctx), yesterday, now=ctx.now)

    months = demo_history.data_months(ctx.now.date(), ctx.history_months)
    periods = {Cycle.MONTH: months, Cycle.QUARTER: demo_history.quarters_of(months), Cycle.YEAR: []}
    current = demo_history.month_text(ctx.now.date())
    with ctx.session() as session:
        needs = []
        for member, scheme, _ in _people(session, config):
            for indicator in scheme.indicators:
                if (source_kind(indicator.source or "") or is_manager_rated(indicator)
                        or indicator.source in SELF_REVIEW_SOURCES):
                    continue  # measured by the bot, or a rating (seed_reviews)
                needs.extend(demo_history.Need(member.userid, indicator.key, period, indicator.target)
                             for period in periods[indicator.cycle])
            guarded = {g.metric: indicator.cycle for indicator in scheme.indicators for g in indicator.guardrails}
            for metric in scheme.metrics:
                if metric.key not in METRIC_KEYS and metric.key in guarded:
                    needs.extend(demo_history.Need(member.userid, metric.key, period)
                                 for period in periods[guarded[metric.key]])
        entered = set(session.execute(select(DataEntry.userid, DataEntry.key, DataEntry.period)).all())
        admin = demo_org.DEMO_ADMINS[0]
        for seed in demo_history.kpi_values(needs, current):
            if (seed.userid, seed.key, seed.period) in entered:
                continue
            record(session, userid=seed.userid, key=seed.key, period=seed.period, kind="value", value=seed.value,
                   reason="", source="import", actor=admin, now=_entered_at(ctx, seed.period), audit=False)


def _entered_at(ctx: SeedContext, period: str) -> datetime:
    """When a period's numbers came in: the first workday after it (the current month's: now)."""
    last = Period.parse(period).months()[-1]
    year, month = (last.year + 1, 1) if last.index == 12 else (last.year, last.index + 1)
    day = next_workday(date(year, month, 1) - timedelta(days=1))
    moment = datetime.combine(day, time(9, 30), tzinfo=ctx.bot.config.schedule.zone)
    return min(moment, ctx.now)


def seed_reviews(ctx: SeedContext) -> None:
    """The self-reviews of the history months, and the managers' ratings of every month with data (the history,
    the rest of its first quarter, this month)."""
    config = ctx.bot.config
    zone = config.schedule.zone
    current = demo_history.month_text(ctx.now.date())
    admin = demo_org.DEMO_ADMINS[0]
    with ctx.session() as session:
        people = _people(session, config)
        reviewed = set(session.execute(select(SelfReview.userid, SelfReview.month)).all())
        rated = set(session.execute(select(DataEntry.userid, DataEntry.key, DataEntry.period)
                                    .where(DataEntry.source == "score")).all())
        for month in demo_history.data_months(ctx.now.date(), ctx.history_months):
            period = Period.parse(month)
            prompt_day = review_prompt_day(period.year, period.index, config.self_review)
            for member, scheme, manager in people:
                if (month in ctx.history_months and (member.userid, month) not in reviewed
                        and prompt_day is not None):
                    keys = [i.key for i in behaviour_indicators_due(scheme, period.index)]
                    asked = datetime.combine(prompt_day, config.self_review.prompt_at, tzinfo=zone)
                    seed = demo_history.self_review(member.userid, month, keys, asked, current)
                    session.add(SelfReview(userid=seed.userid, month=seed.month, scheme_key=scheme.key,
                                           ratings=seed.ratings, achievements=seed.achievements,
                                           improvements=seed.improvements, created_at=seed.submitted_at,
                                           updated_at=seed.submitted_at, submitted_at=seed.submitted_at))
                for indicator in scheme.indicators:
                    if not is_manager_rated(indicator) or indicator.cycle not in cycles_due(period.index):
                        continue
                    text = str(period_of_cycle(indicator.cycle, period))
                    if (member.userid, indicator.key, text) in rated:
                        continue
                    rating = demo_history.manager_rating(member.userid, indicator.key, text, current)
                    record(session, userid=member.userid, key=indicator.key, period=text, kind="value",
                           value=Decimal(rating.rating), reason=rating.reason, source="score",
                           actor=manager or admin, now=_entered_at(ctx, month), audit=False)


@contextmanager
def _one_transaction(ctx: SeedContext) -> Iterator[sessionmaker[Session]]:
    """Sessions that all share one database transaction (each `transaction()` inside is a savepoint), committed
    once at the end: nothing written inside is seen by the sender, or anyone, before the whole of it is."""
    with ctx.bot.engine.connect() as connection, connection.begin():
        yield sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


def seed_published_results(ctx: SeedContext) -> None:
    """Close and publish each history month (with the quarter or year it ends) through bot.appraisal.results, at the moments
    the schedule would have; the messages those runs queue are recorded as delivered then, not sent now."""
    config = ctx.bot.config
    for month in ctx.history_months:
        period = Period.parse(month)
        closed_at, published_at = schedule.close_moment(config, period), schedule.publish_moment(config, period)
        if closed_at is None or closed_at > ctx.now:
            continue  # its close is still ahead: the schedule runs it
        with _one_transaction(ctx) as sessions:
            with transaction(sessions) as session:
                before = session.scalar(select(func.max(OutboxMessage.id))) or 0
                state = store.period_state(session, month)
            if state is None or state.state != "published":
                close.close_month(sessions, config, closed_at, month)
                if published_at is not None and published_at <= ctx.now:
                    publish.publish(sessions, config, published_at, month)
            with transaction(sessions) as session:
                session.execute(update(OutboxMessage).where(OutboxMessage.id > before,
                                                            OutboxMessage.status == "pending")
                                .values(status="sent", sent_at=OutboxMessage.created_at, attempts=0))


# Run in this order. Add a step per flow as it lands (see the module docstring).
SEED_STEPS: list[SeedStep] = [
    SeedStep("org", seed_org, every_start=True),
    SeedStep("contact_statistics", seed_contact_statistics, every_start=True),
    SeedStep("weekly_reports", seed_weekly_reports),
    SeedStep("kpi_data", seed_kpi_data),
    SeedStep("reviews", seed_reviews),
    SeedStep("published_results", seed_published_results),
]


def run_seed_steps(ctx: SeedContext, state: SandboxState, steps: list[SeedStep] | None = None) -> list[str]:
    """Run the steps this data dir still needs; returns the names of those run."""
    ran = []
    for step in SEED_STEPS if steps is None else steps:
        if not step.every_start and step.name in state.seeded:
            continue
        log.info("sandbox seed: %s", step.name)
        step.run(ctx)
        ran.append(step.name)
        if not step.every_start:
            state.seeded.append(step.name)
            state.save()
    return ran
