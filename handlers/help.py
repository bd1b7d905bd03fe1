"""/help and the welcome when someone opens the app: what this person may do, by role."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.appraisal.people import Role
from bot.chat.routing import Context, Router
from bot.storage.models import MemberVisit
from bot.templates import words

router = Router("help")


def available_commands(ctx: Context) -> list[str]:
    return sorted((spec.name for spec in ctx.commands if ctx.person.role >= spec.role),
                  key=_help_order)


def _help_order(name: str) -> tuple[int, str]:
    # /help first, then in the order a member meets them over a month; unknown ones last.
    order = ["/help", "/report", "/review", "/leave", "/result", "/idp", "/okr", "/kr", "/score", "/data",
             "/target", "/reports", "/team", "/calibrate", "/waive", "/360", "/cancel"]
    return (order.index(name) if name in order else len(order), name)


@router.command("/help", *words("help.aliases"), role=Role.GUEST)
def show_help(ctx: Context) -> None:
    ctx.reply("help.txt.j2", person=ctx.person, commands=available_commands(ctx))


@router.event("enter_agent", "subscribe")
def welcome(ctx: Context) -> None:
    """WeCom sends enter_agent every time a person opens the app: welcome them the first time, and again
    only after a long absence ([bot] welcome_again_after_days)."""
    # When the person opened the app, not when we got round to it: a backlog must not look like an absence.
    entered = datetime.fromtimestamp(ctx.update.create_time, timezone.utc) if ctx.update.create_time else ctx.now
    visit = ctx.session.get(MemberVisit, ctx.person.userid)
    if visit is None:
        visit = MemberVisit(userid=ctx.person.userid, last_entered_at=entered, welcomed_at=None)
        ctx.session.add(visit)
        away = None
    else:
        away = entered - visit.last_entered_at
        visit.last_entered_at = max(visit.last_entered_at, entered)
    if visit.welcomed_at is None or (away is not None and away >= timedelta(days=ctx.config.bot.welcome_again_after_days)):
        visit.welcomed_at = entered
        ctx.reply("welcome.txt.j2", person=ctx.person)
