"""What people read about results: /result (one's own, with history and trend), /team (a manager's team table),
/idp (open development plans) and /quality (the data-quality gate); each view passes through the permissions."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.appraisal.assignment import cached_scheme
from bot.appraisal.entries import appraisal_month
from bot.appraisal.periods import parse_period
from bot.appraisal.people import Org, Role
from bot.appraisal.results.calibrate import calibration_period
from bot.appraisal.results.gate import ALL, AcceptError, accept, covered, period_quality, require_known_kind
from bot.appraisal.results.roster import Roster
from bot.appraisal.results.schedule import close_moment, publish_moment
from bot.appraisal.results.store import latest_published_period, period_state, stored_result
from bot.appraisal.results.views import ROWS_SHOWN, history, idp_view, period_label, result_view, team_rows
from bot.appraisal.workcalendar import local
from bot.chat.routing import Context, Router
from bot.storage.models import Idp
from bot.templates import words
from scoring import Period

router = Router("results")


@router.command("/result", *words("results.result"))
def result_command(ctx: Context) -> None:
    me = ctx.person
    text = ctx.args.strip()
    month = appraisal_month(ctx.config, ctx.now)
    if text:
        period = parse_period(text, month)
        if period is None:
            org = Org.load(ctx.session, ctx.config)
            lowered = text.lower()
            names_someone = any(m.userid.lower() == lowered or m.name == text for m in org.members.values())
            code = "own_only" if names_someone else "period_invalid"
            ctx.reply("results/view_error.txt.j2", code=code, name=me.name, text=text,
                      manager=me.role >= Role.MANAGER, period="", publish_at=None,
                      publish_workday=ctx.config.results.publish_on_workday)
            return
    else:
        latest = latest_published_period(ctx.session, me.userid)
        if latest is None:
            ctx.reply("results/view_error.txt.j2", code="none_published", name=me.name, text="", manager=False,
                      period="", publish_at=None, publish_workday=ctx.config.results.publish_on_workday)
            return
        period = latest
    row = stored_result(ctx.session, me.userid, str(period))
    if row is None or row.status != "published":
        state = period_state(ctx.session, str(period))
        code = "held_back" if state is not None and state.state == "published" else "not_published"
        ctx.reply("results/view_error.txt.j2", code=code, name=me.name, text=text, manager=False,
                  period=str(period), publish_at=local(ctx.config, publish_moment(ctx.config, period)),
                  publish_workday=ctx.config.results.publish_on_workday)
        return
    ctx.reply("results/result_view.md.j2", r=result_view(row.data),
              history=history(ctx.session, me.userid, period, ctx.config.results.history_months))


@router.command("/team", *words("results.team"), role=Role.MANAGER)
def team_command(ctx: Context) -> None:
    me = ctx.person
    month = appraisal_month(ctx.config, ctx.now)
    text = ctx.args.strip()
    if text:
        period = parse_period(text, month)
        if period is None:
            ctx.reply("results/view_error.txt.j2", code="period_invalid", name=me.name, text=text, manager=True,
                      period="", publish_at=None, publish_workday=ctx.config.results.publish_on_workday)
            return
    else:
        period = calibration_period(ctx.session) or _latest_team_month(ctx, month)
    org = Org.load(ctx.session, ctx.config)
    status, rows = team_rows(ctx.session, ctx.config, org, me.userid, period)
    ctx.reply("results/team_view.md.j2", viewer=me.name, period=str(period), period_label=period_label(period),
              status=status, rows=rows[:ROWS_SHOWN], more=max(0, len(rows) - ROWS_SHOWN),
              multiple_teams=len({row["team_name"] for row in rows}) > 1,
              publish_at=local(ctx.config, publish_moment(ctx.config, period)),
              close_at=local(ctx.config, close_moment(ctx.config, period)))


def _latest_team_month(ctx: Context, month: Period) -> Period:
    """The appraisal month once it is closed; before that, the last month whose results are out."""
    if period_state(ctx.session, str(month)) is None and period_state(ctx.session, str(month.previous())):
        return month.previous()
    return month


@router.command("/idp", *words("results.idp"))
def idp_command(ctx: Context) -> None:
    me = ctx.person
    roster = Roster.load(ctx.session, ctx.config)
    org = roster.org
    visible = set(org.visible(me.userid))
    plans = ctx.session.scalars(select(Idp).where(Idp.status == "open").order_by(Idp.opened_at, Idp.id)).all()

    def view(idp: Idp) -> dict[str, Any]:
        names = ({i.key: i.name for i in cached_scheme(roster.scheme_names[idp.userid]).indicators}
                 if idp.userid in roster.scheme_names else {})
        return idp_view(ctx.session, idp, names, org.name(idp.userid), org.name(idp.manager_userid))

    own = [view(idp) for idp in plans if idp.userid == me.userid]
    team = [view(idp) for idp in plans if idp.userid != me.userid and idp.userid in visible]
    ctx.reply("results/idp_view.md.j2", name=me.name, own=own, team=team)


# Findings listed in one /quality reply (one bubble: WeCom cuts at 2048 bytes); the rest are in the CLI and its CSV.
FINDINGS_SHOWN = 6


@router.command("/quality", *words("results.quality"), role=Role.ADMIN)
def quality_command(ctx: Context) -> None:
    """/quality [期间]: the gate's findings; /quality accept 期间 类型 [成员] 理由: accept them (audited)."""
    parts = ctx.args.split()
    month = appraisal_month(ctx.config, ctx.now)
    if parts and parts[0].lower() in words("results.accept"):
        _accept(ctx, parts[1:], month)
        return
    period = parse_period(parts[0], month) if parts else (calibration_period(ctx.session) or month.previous())
    if period is None:
        ctx.reply("quality/error.txt.j2", code="period_invalid", p={"text": parts[0]})
        return
    quality = period_quality(ctx.session, ctx.config, period, ctx.now)
    ctx.reply("quality/chat_view.txt.j2", period=str(period), period_label=period_label(period),
              summary=quality.summary(ctx.config, shown=FINDINGS_SHOWN))


def _accept(ctx: Context, parts: list[str], month: Period) -> None:
    if not parts:
        raise AcceptError("reason_missing")
    period = parse_period(parts[0], month)
    if period is None:
        raise AcceptError("period_invalid", text=parts[0])
    kind = parts[1] if len(parts) > 1 else ""
    kind = ALL if kind.lower() in (*words("results.all_kinds"), ALL) else kind
    rest = parts[2:]
    member = None
    if rest:
        org = Org.load(ctx.session, ctx.config)
        found = [m.userid for m in org.members.values() if rest[0] in (m.userid, m.name)]
        if len(found) == 1:
            member, rest = found[0], rest[1:]
    quality = period_quality(ctx.session, ctx.config, period, ctx.now)
    member_name = quality.names().get(member or "", member or "")
    require_known_kind(kind)
    findings = covered(quality.findings, kind, member)
    if not findings:
        raise AcceptError("nothing_found", period=str(period), kind=kind, member=member_name)
    accept(ctx.session, period=str(period), kind=kind, userid=member, reason=" ".join(rest),
           actor=ctx.person.userid, now=ctx.now)
    state = period_state(ctx.session, str(period))
    ctx.reply("quality/accepted_chat.txt.j2", period=str(period), kind=kind, count=len(findings),
              member=member_name, published=state is not None and state.state == "published")
