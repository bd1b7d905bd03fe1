"""/reports: a manager reads the team's weekly reports, one week of the whole team or one member's latest."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.people import Org, Role, active_members
from bot.appraisal.periods import parse_week
from bot.appraisal.weekly_reports import (WeekView, current_week, deadline_of, recent_reports,
                                          report_entry, week_statuses)
from bot.appraisal.workcalendar import local
from bot.chat.routing import Context, Router
from bot.storage.models import Member
from bot.templates import words

router = Router("reports")

STATUSES = ("submitted", "draft", "missing", "leave")


def team_of(session: Session, manager: str, role: Role) -> list[Member]:
    """Active members a manager may see: their reports, and reports' reports; an admin sees everyone."""
    org = Org.load(session)  # the one team walk; admins play no part in it (the role decides below)
    if role >= Role.ADMIN:
        return [member for member in org.members.values() if member.userid != manager]
    return org.team_members(manager)


def resolve_member(session: Session, text: str, within: Iterable[Member]) -> tuple[list[Member], list[Member]]:
    """Members named by userid or name: (matches inside `within`, matches anywhere)."""
    wanted = text.strip()
    everyone = session.scalars(select(Member).where(
        (Member.userid == wanted) | (Member.name == wanted))).all()
    lowered = wanted.lower()
    everyone = list(everyone) or [m for m in active_members(session) if m.userid.lower() == lowered]
    allowed = {m.userid for m in within}
    return [m for m in everyone if m.userid in allowed], list(everyone)


@router.command("/reports", *words("weekly.reports_aliases"), role=Role.MANAGER)
def team_reports_command(ctx: Context) -> None:
    today = local(ctx.config, ctx.now).date()
    member_text, week = "", None
    for token in ctx.args.split():
        parsed = parse_week(token, today)
        if parsed is not None and week is None:
            week = str(parsed)
        else:
            member_text = f"{member_text} {token}".strip()
    team = team_of(ctx.session, ctx.person.userid, ctx.person.role)
    if member_text:
        inside, anywhere = resolve_member(ctx.session, member_text, team)
        if not inside:
            template = "weekly/not_your_team.txt.j2" if anywhere else "weekly/member_not_found.txt.j2"
            ctx.reply(template, who=ctx.person.name, text=member_text)
            return
        if len(inside) > 1:
            ctx.reply("weekly/member_ambiguous.txt.j2", text=member_text, members=inside)
            return
        _member_reports(ctx, inside[0], week)
        return
    _team_week(ctx, team, week or current_week(ctx.config, ctx.now))


def _member_reports(ctx: Context, member: Member, week: str | None) -> None:
    reports = recent_reports(ctx.session, member.userid, week)
    ctx.reply("weekly/member_reports.md.j2", member=member, entries=[report_entry(ctx.config, r) for r in reports],
              questions=ctx.config.weekly_report.questions, week=WeekView.of(week) if week else None, limit=300)


def _team_week(ctx: Context, team: Sequence[Member], week: str) -> None:
    rows = week_statuses(ctx.session, ctx.config, week, team)
    ctx.reply("weekly/team_reports.md.j2", week=WeekView.of(week), rows=rows,
              key=ctx.config.weekly_report.questions[0].key,
              deadline=local(ctx.config, deadline_of(week, ctx.config)), limit=40,
              counts={s: sum(1 for _, status, _ in rows if status == s) for s in STATUSES})
