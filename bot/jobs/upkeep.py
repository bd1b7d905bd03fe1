"""Upkeep jobs: the nightly sync of the WeCom directory, and pruning the inbox's old dedupe keys."""
from __future__ import annotations

from datetime import time

from bot.appraisal.org_sync import sync_org
from bot.jobs.context import JobContext
from bot.templates import render
from bot.wecom.inbox import prune_dedupe_keys

PRUNE_AT = time(3, 17)  # a quiet hour, off hh:00 and hh:30


def run_org_sync(ctx: JobContext) -> str:
    report = sync_org(ctx.session, ctx.client, ctx.config, ctx.clock.now())
    return render("ops/org_sync.txt.j2", ctx.config.bot.locale, report=report)


def run_inbox_prune(ctx: JobContext) -> str:
    keep_days = ctx.config.bot.dedupe_keep_days
    deleted = prune_dedupe_keys(ctx.session, ctx.clock.now(), keep_days)
    return render("ops/inbox_prune.txt.j2", ctx.config.bot.locale, deleted=deleted, keep_days=keep_days)
