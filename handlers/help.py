"""/help and the welcome when someone opens the app: what this person may do, by role."""
from __future__ import annotations

from bot.routing import Context, Role, Router

router = Router("help")


def available_commands(ctx: Context) -> list[str]:
    dispatcher = ctx.services["dispatcher"]
    return sorted((spec.name for spec in dispatcher.command_specs() if ctx.person.role >= spec.role),
                  key=_help_order)


def _help_order(name: str) -> tuple[int, str]:
    # /help first, then in the order a member meets them over a month; unknown ones last.
    order = ["/help", "/report", "/review", "/leave", "/result", "/idp", "/okr", "/kr", "/score", "/data",
             "/target", "/reports", "/team", "/calibrate", "/waive", "/360", "/cancel"]
    return (order.index(name) if name in order else len(order), name)


@router.command("/help", "/帮助", "/h", "/?", role=Role.GUEST)
def show_help(ctx: Context) -> None:
    ctx.reply("help.txt.j2", person=ctx.person, commands=available_commands(ctx))


@router.event("enter_agent", "subscribe")
def welcome(ctx: Context) -> None:
    ctx.reply("welcome.txt.j2", person=ctx.person)
