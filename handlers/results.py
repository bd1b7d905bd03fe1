"""What people read about results: /result (one's own, with history and trend), /team (a manager's team table)
and /idp (open development plans); every view passes through bot.appraisal.permissions."""
from __future__ import annotations

from sqlalchemy import select

from datetime import datetime
from typing import Any

from bot.appraisal.assignment import cached_scheme
from bot.appraisal.entries import appraisal_month, parse_period
from bot.storage.models import Idp
from bot.appraisal.permissions import Org
from bot.appraisal import data_quality
from bot.appraisal.results import (ROWS_SHOWN, Roster, calibration_period, close_moment, history, idp_view, latest_published_period,
                         period_label, period_quality, period_state, publish_moment, result_view, stored_result,
                         team_rows)
from bot.chat.routing import Context, Role, Router
from scoring import Period

router = Router("results")


def _local(ctx: Context, moment: datetime | None) -> datetime | None:
    return moment.astimezone(ctx.config.schedule.zone) if moment is not None else None


@router.command("/result", "/结果", "/成绩")
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
        period = Period.parse(latest)
    row = stored_result(ctx.session, me.userid, str(period))
    if row is None or row.status != "published":
        state = period_state(ctx.session, str(period))
        code = "held_back" if state is not None and state.state == "published" else "not_published"
        ctx.reply("results/view_error.txt.j2", code=code, name=me.name, text=text, manager=False,
                  period=str(period), publish_at=_local(ctx, publish_moment(ctx.config, period)),
                  publish_workday=ctx.config.results.publish_on_workday)
        return
    ctx.reply("results/result_view.md.j2", r=result_view(row.data),
              history=history(ctx.session, me.userid, period, ctx.config.results.history_months))


@router.command("/team", "/团队", role=Role.MANAGER)
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
              publish_at=_local(ctx, publish_moment(ctx.config, period)),
              close_at=_local(ctx, close_moment(ctx.config, period)))


def _latest_team_month(ctx: Context, month: Period) -> Period:
    """The appraisal month once it is closed; before that, the last month whose results are out."""
    if period_state(ctx.session, str(month)) is None and period_state(ctx.session, str(month.previous())):
        return month.previous()
    return month


@router.command("/idp", "/发展计划")
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


@router.command("/quality", "/数据质量", role=Role.ADMIN)
def quality_command(ctx: Context) -> None:
    """/quality [期间]: the gate's findings; /quality accept 期间 类型 [成员] 理由: accept them (audited)."""
    words = ctx.args.split()
    month = appraisal_month(ctx.config, ctx.now)
    if words and words[0].lower() in ("accept", "接受"):
        _accept(ctx, words[1:], month)
        return
    period = parse_period(words[0], month) if words else (calibration_period(ctx.session) or month.previous())
    if period is None:
        ctx.reply("quality/error.txt.j2", code="period_invalid", p={"text": words[0]})
        return
    quality = period_quality(ctx.session, ctx.config, period, ctx.now)
    names = quality.names()
    ctx.reply("quality/chat_view.txt.j2", period=str(period), period_label=period_label(period),
              summary=data_quality.summary(quality.findings, quality.accepted, names, ctx.config.bot.locale,
                                           shown=FINDINGS_SHOWN))


def _accept(ctx: Context, words: list[str], month: Period) -> None:
    if not words:
        ctx.reply("quality/error.txt.j2", code="reason_missing", p={})
        return
    period = parse_period(words[0], month)
    if period is None:
        ctx.reply("quality/error.txt.j2", code="period_invalid", p={"text": words[0]})
        return
    kind = words[1] if len(words) > 1 else ""
    kind = data_quality.ALL if kind.lower() in ("all", "全部", data_quality.ALL) else kind
    rest = words[2:]
    member = None
    if rest:
        org = Org.load(ctx.session, ctx.config)
        found = [m.userid for m in org.members.values() if rest[0] in (m.userid, m.name)]
        if len(found) == 1:
            member, rest = found[0], rest[1:]
    quality = period_quality(ctx.session, ctx.config, period, ctx.now)
    covered = [f for f in quality.findings if kind in (data_quality.ALL, f.kind)
               and (member is None or (not f.team_wide and f.userids[0] == member))]
    try:
        if kind != data_quality.ALL and kind not in data_quality.FINDING_KINDS:
            raise data_quality.AcceptError("unknown_kind", kind=kind, kinds=list(data_quality.FINDING_KINDS))
        if not covered:
            raise data_quality.AcceptError("nothing_found", period=str(period), kind=kind,
                                           member=quality.names().get(member or "", member or ""))
        data_quality.accept(ctx.session, period=str(period), kind=kind, userid=member, reason=" ".join(rest),
                            actor=ctx.person.userid, now=ctx.now)
    except data_quality.AcceptError as error:
        ctx.reply("quality/error.txt.j2", code=error.code, p=error.params)
        return
    state = period_state(ctx.session, str(period))
    ctx.reply("quality/accepted_chat.txt.j2", period=str(period), kind=kind, count=len(covered),
              member=quality.names().get(member or "", member or ""),
              published=state is not None and state.state == "published")
