"""What the sandbox holds before anyone types: the sample organisation, its history, one seed step per flow.

Each step is a plain function of a SeedContext, listed in SEED_STEPS in the order they run.

* A step that writes to the database runs once per data dir; its name is then remembered in the data
  dir's sandbox-state.json, so a step added later still runs when an existing sandbox restarts.
* A step marked `every_start` fills in-memory state (the fake WeCom's) and runs at every start.
* A step must be idempotent where it can (a crash between the step and saving the state reruns it),
  must not depend on the wall clock (use `ctx.now` and `ctx.history_months`), and must not message
  anyone: history is what people would have seen in earlier months, not news.

Extension points, one per flow, to add next to the existing steps when the flow lands:

* weekly reports (issue 4): `seed_weekly_reports` — a submitted report for every member and every
  week of `ctx.history_months`, written through the flow's own storage functions, a few members
  missing one week so the reminders and digests have something to say;
* KPI data (`/data`, data import, the WeCom statistics pull): `seed_kpi_data` — actuals and targets
  per indicator of each member's scheme for the history months; the customer-contact statistics the
  pull reads from WeCom are already in the fake (`seed_contact_statistics`), so that part only needs
  the pull run over `ctx.history_months`;
* self-reviews and manager scores (`/review`, `/score`): `seed_reviews`;
* month close and publish (issue 5): `seed_published_results` — close and publish each history month
  through the results service, recording the pushes as done, so `/result`, `/team` and `/score` show
  three real months at once.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.db import transaction

if TYPE_CHECKING:
    from bot.app import KpiBot
    from bot.clock import Clock
    from bot.fake_wecom import FakeWeCom
    from bot.sandbox import SandboxState

log = logging.getLogger(__name__)

HISTORY_MONTHS = 3


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
    ctx.bot.sync_org()


def seed_contact_statistics(ctx: SeedContext) -> None:
    """The sample team's customer-contact and customer-group figures in the fake (bot.demo_stats), covering
    the history months and up to yesterday, for the statistics pull to find."""
    from bot import demo_stats

    today = ctx.now.date()
    first = date.fromisoformat(ctx.history_months[0] + "-01")
    demo_stats.populate(ctx.fake, today, days=(today - first).days)


# Run in this order. Add a step per flow as it lands (see the module docstring).
SEED_STEPS: list[SeedStep] = [
    SeedStep("org", seed_org, every_start=True),
    SeedStep("contact_statistics", seed_contact_statistics, every_start=True),
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
