"""The nightly wecom_stats_sync job: pull yesterday's customer-contact figures and the days WeCom may still correct."""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from bot.appraisal.wecom_stats import members_to_sync, sync_stats, sync_window, wecom_today
from bot.config import Config
from bot.storage.db import transaction
from bot.templates import render
from bot.wecom import outbox
from bot.wecom.client import WECOM_ZONE
from bot.wecom.contact_stats import StatsNotPermitted

if TYPE_CHECKING:  # for the annotation only: the runner imports this module for its job table
    from bot.jobs.context import JobContext

log = logging.getLogger(__name__)


def nightly_window(run_day: date, repull_days: int) -> tuple[date, date]:
    """Yesterday, plus the `repull_days` days before it whose figures WeCom may still change."""
    last = run_day - timedelta(days=1)
    return last - timedelta(days=repull_days), last


def sync_period(at: datetime, config: Config) -> str | None:
    """The job acts once a day (for that day's pull of yesterday), and not at all when disabled."""
    return at.date().isoformat() if config.wecom_stats.enabled else None


def run_sync_job(ctx: JobContext) -> str:
    """Pull yesterday and the days before it WeCom may still correct. On 48002 the admins get one message a
    day (the outbox key carries the date) and the run stops after that one call: no retry loop."""
    config, clock = ctx.config, ctx.clock
    now = clock.now()
    today = wecom_today(now)
    first, last = nightly_window(ctx.at.astimezone(WECOM_ZONE).date(), config.wecom_stats.repull_days)
    earliest, latest = sync_window(today)
    first, last = max(first, earliest), min(last, latest)
    locale = config.bot.locale
    if first > last:
        return render("wecom_stats/job_detail.txt.j2", locale, report=None, not_permitted=None)
    # A short read of its own: ctx.session is first used for the write after every call is made.
    with transaction(ctx.sessions) as session:
        userids = members_to_sync(session, config)
    try:
        report = sync_stats(ctx.session, ctx.client, userids, first, last, now=now,
                            concurrency=config.wecom_stats.concurrency)
    except StatsNotPermitted as error:
        log.error("WeCom refused the customer-contact statistics: %s", error)
        outbox.send_to_admins(ctx.session, config, f"wecom_stats:48002:{today.isoformat()}",
                              "wecom_stats/not_permitted.txt.j2", now, errmsg=error.errmsg, path=error.path,
                              corp_id=config.wecom.corp_id, agent_id=config.wecom.agent_id)
        return render("wecom_stats/job_detail.txt.j2", locale, report=None, not_permitted=error)
    return render("wecom_stats/job_detail.txt.j2", locale, report=report, not_permitted=None)
