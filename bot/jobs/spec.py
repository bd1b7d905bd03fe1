"""What a job is (JobSpec: id, trigger, the periods it acts for, catch-up) and the fire-time arithmetic on it."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from bot.config import Config
from bot.jobs.context import JobContext


def configured_grace(config: Config) -> timedelta:
    """How old a missed fire time may be and still be caught up, unless a job says otherwise."""
    return timedelta(hours=config.schedule.catch_up_grace_hours)


@dataclass(frozen=True)
class JobSpec:
    id: str
    description: str
    trigger: Callable[[Config], BaseTrigger]
    period_of: Callable[[datetime, Config], str | None]  # None: nothing to do at that moment (local time)
    run: Callable[[JobContext], str | None]
    # How old a missed fire time may be and still be caught up at start-up.
    catch_up_within: Callable[[Config], timedelta] = configured_grace


def find_job(jobs: Iterable[JobSpec], job_id: str) -> JobSpec:
    for spec in jobs:
        if spec.id == job_id:
            return spec
    raise KeyError(job_id)


def daily_at(clock_time: Callable[[Config], time]) -> Callable[[Config], BaseTrigger]:
    """A trigger firing every day at a configured local time; period_of picks the days that count."""
    def trigger(config: Config) -> BaseTrigger:
        at = clock_time(config)
        return CronTrigger(hour=at.hour, minute=at.minute, timezone=config.schedule.zone)
    return trigger


def fire_times(trigger: BaseTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every time the trigger fires in [start, end], found by stepping forward from start."""
    fires: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return fires


# Far enough to cross any holiday and the longest month-end rule; a job never due within it is off.
EFFECTIVE_HORIZON = timedelta(days=400)


def next_effective_fire_time(spec: JobSpec, config: Config, after: datetime) -> datetime | None:
    """The first fire time at or after `after` on which the job has something to do (its period_of is
    not None), in the configured zone: the weekly prompt's next fire skips holidays and lands on make-up
    workdays. None when there is none within EFFECTIVE_HORIZON."""
    zone = config.schedule.zone
    start = after.astimezone(zone)
    trigger = spec.trigger(config)
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire - start <= EFFECTIVE_HORIZON:
        local = fire.astimezone(zone)
        if spec.period_of(local, config) is not None:
            return local
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return None
