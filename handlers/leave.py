"""/leave: register, list and end a leave (the rules and the queries live in bot.appraisal.leave)."""
from __future__ import annotations

from bot.appraisal.leave import current_and_upcoming, end_leaves, leave_view, parse_leave_dates, register_leave
from bot.appraisal.workcalendar import local
from bot.chat.routing import Context, Router
from bot.templates import words

router = Router("leave")


@router.command("/leave", *words("leave.aliases"))
def leave_command(ctx: Context) -> None:
    args = ctx.args.strip()
    today = local(ctx.config, ctx.now).date()
    word = args.lower()
    if word in words("leave.list"):
        leaves = current_and_upcoming(ctx.session, ctx.person.userid, today)
        ctx.reply("leave/list.txt.j2", who=ctx.person.name,
                  leaves=[leave_view(leave.start_date, leave.end_date, today) for leave in leaves])
        return
    if word in words("leave.cancel"):
        ended, cancelled = end_leaves(ctx.session, ctx.person.userid, today, ctx.now)
        ctx.reply("leave/cancelled.txt.j2", who=ctx.person.name, ended=ended, cancelled=cancelled)
        return
    first, last = parse_leave_dates(args, today)  # a LeaveDateError is the member's reply (the dispatcher's)
    register_leave(ctx.session, ctx.person.userid, first, last, ctx.now)
    ctx.reply("leave/registered.txt.j2", who=ctx.person.name, leave=leave_view(first, last, today))
