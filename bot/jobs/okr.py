"""The OKR quarter close: in the first week of a quarter, score the ended quarter's approved KRs and tell each owner."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.appraisal.okr import kr_views, score_quarter
from bot.appraisal.periods import quarter_of
from bot.storage.models import OkrKeyResult
from bot.templates import render
from bot.wecom import outbox
from scoring import Period
from scoring.okr_scores import okr_average

if TYPE_CHECKING:
    from bot.config import Config
    from bot.jobs.context import JobContext

OKR_CLOSE_AT_HOUR, OKR_CLOSE_AT_MINUTE = 8, 50


def quarter_close_period(at: datetime, _config: Config) -> str | None:
    """In the first week of a quarter, the quarter just ended (a missed first day is made up the next days)."""
    day = at.date()
    if day.month in (1, 4, 7, 10) and day.day <= 7:
        return str(quarter_of(day).previous())
    return None


def run_quarter_close(ctx: JobContext) -> str:
    """Score the ended quarter's approved KRs and tell each owner their scores."""
    now = ctx.clock.now()
    locale = ctx.config.bot.locale
    scored = score_quarter(ctx.session, Period.parse(ctx.period), now)
    by_owner: dict[str, list[OkrKeyResult]] = {}
    for kr in scored:
        by_owner.setdefault(kr.owner, []).append(kr)
    for owner, rows in by_owner.items():
        views = kr_views(ctx.session, rows)
        average = okr_average(kr.score for kr in rows if kr.score is not None)
        outbox.send(ctx.session, ctx.config, f"okr:quarter:{ctx.period}:{owner}", owner, "okr/quarter_scores.txt.j2",
                    now, quarter=ctx.period, krs=views, average=f"{average:.2f}" if average is not None else "—")
    return render("okr/quarter_closed.txt.j2", locale, quarter=ctx.period, scored=len(scored), members=len(by_owner))
