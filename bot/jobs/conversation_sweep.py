"""The conversation_sweep job: conversations nobody came back to are closed as a timeout closes them (drafts kept)."""
from __future__ import annotations

from datetime import timedelta, timezone

from sqlalchemy import delete, select

from bot.jobs.context import JobContext
from bot.storage.models import Conversation, JobRun
from bot.templates import render

JOB_ID = "conversation_sweep"
EVERY_MINUTES = 10
# The sweep runs often; its own run records are only worth keeping for a week.
RUNS_KEPT = timedelta(days=7)


def run_sweep(ctx: JobContext) -> str:
    moment = ctx.at.astimezone(timezone.utc)
    # Whole rows, so that each expire() finds its conversation in the session instead of asking again.
    expired = ctx.session.scalars(select(Conversation).where(Conversation.expires_at <= moment)
                                  .order_by(Conversation.userid)).all()
    for row in expired:
        ctx.dispatcher.expire(ctx.session, row.userid, moment)
    ctx.session.execute(delete(JobRun).where(JobRun.job_id == JOB_ID,
                                             JobRun.started_at < ctx.clock.now() - RUNS_KEPT))
    return render("ops/sweep.txt.j2", ctx.config.bot.locale, closed=len(expired))
