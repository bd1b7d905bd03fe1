"""/okr and /kr: department objectives, personal key results, approval by the manager, progress."""
from __future__ import annotations

from sqlalchemy import select

from bot.appraisal.okr import (
    OkrError,
    add_kr,
    add_objective,
    approval_card,
    department_tree,
    edit_kr,
    find_department,
    kr_view,
    kr_views,
    member_tree,
    parse_id,
    parse_kr_text,
    parse_number,
    record_kr_progress,
    review_kr,
    team_tree,
)
from bot.appraisal.people import Role, manager_or_admins, names_of
from bot.appraisal.periods import parse_period, quarter_of
from bot.appraisal.workcalendar import local
from bot.chat.routing import Context, Router
from bot.storage.models import Department, Member, OkrKeyResult
from bot.templates import words
from scoring import Period, PeriodKind

router = Router("okr")


def _current_quarter(ctx: Context) -> Period:
    return quarter_of(local(ctx.config, ctx.now).date())


def _take_quarter(ctx: Context, given: list[str]) -> tuple[Period, list[str]]:
    """A quarter that names its year (2026-Q4, 2026年第四季度) anywhere among the words; else the current one."""
    for index, word in enumerate(given):
        quarter = parse_period(word, kind=PeriodKind.QUARTER)
        if quarter is not None:
            return quarter, given[:index] + given[index + 1:]
    return _current_quarter(ctx), given


@router.command("/okr", *words("okr.okr_aliases"), role=Role.MEMBER)
def show_or_add_objective(ctx: Context) -> None:
    given = ctx.args.split()
    if len(given) >= 2 and given[0].lower() in words("okr.objective") and given[1].lower() in words("okr.add"):
        _add_objective(ctx, ctx.args.split(None, 2)[2] if len(given) > 2 else "")
        return
    quarter, given = _take_quarter(ctx, given)
    asked = given[0].lower() if given else ""
    if asked in words("okr.team"):
        ctx.require(Role.MANAGER, OkrError.TEMPLATE, code="managers_only", p={"action": "team_okr"})
        scope, objectives = "team", team_tree(ctx.session, ctx.person.userid, quarter)
    elif asked in words("okr.department"):
        scope, objectives = "department", department_tree(ctx.session, ctx.person.userid, quarter)
    else:
        scope, objectives = "member", member_tree(ctx.session, ctx.person.userid, quarter)
    ctx.reply("okr/tree.md.j2", scope=scope, quarter=str(quarter), objectives=objectives, person=ctx.person)


def _add_objective(ctx: Context, text: str) -> None:
    ctx.require(Role.MANAGER, OkrError.TEMPLATE, code="managers_only", p={"action": "add_objective"})
    quarter, given = _take_quarter(ctx, text.split())
    department_id: int | None = None
    if given and given[0].startswith(("@", "＠")):
        ctx.require(Role.ADMIN, OkrError.TEMPLATE, code="managers_only", p={"action": "other_department"})
        department_id = find_department(ctx.session, given[0][1:]).id
        given = given[1:]
    if department_id is None:
        member = ctx.session.get(Member, ctx.person.userid)
        if member is None or member.main_department is None:
            raise OkrError("not_a_member")
        department_id = member.main_department
    objective = add_objective(ctx.session, title=" ".join(given), quarter=quarter, department_id=department_id,
                              by=ctx.person.userid, now=ctx.now)
    department = ctx.session.get(Department, department_id)
    ctx.reply("okr/objective_added.txt.j2", objective=objective,
              department=department.name if department else str(department_id))


@router.command("/kr", *words("okr.kr_aliases"), role=Role.MEMBER)
def key_results(ctx: Context) -> None:
    given = ctx.args.split()
    action = given[0].lower() if given else ""
    if action in words("okr.add"):
        _add_kr(ctx, given[1:])
    elif action in words("okr.edit"):
        _edit_kr(ctx, given[1:])
    elif action in words("okr.progress"):
        _progress(ctx, given[1:])
    elif action in words("okr.approve"):
        _review(ctx, given[1:], approve=True)
    elif action in words("okr.send_back"):
        _review(ctx, given[1:], approve=False)
    else:
        rows = list(ctx.session.scalars(select(OkrKeyResult).where(
            OkrKeyResult.owner == ctx.person.userid, OkrKeyResult.quarter == str(_current_quarter(ctx)))
            .order_by(OkrKeyResult.id)))
        ctx.reply("okr/kr_usage.txt.j2", person=ctx.person, krs=kr_views(ctx.session, rows))


def _add_kr(ctx: Context, given: list[str]) -> None:
    objective_id = parse_id(given[0]) if given else None
    if objective_id is None or len(given) < 2:
        raise OkrError("kr_format")
    title, target, unit = parse_kr_text(" ".join(given[1:]))
    kr = add_kr(ctx.session, owner=ctx.person.userid, objective_id=objective_id, title=title, target=target,
                unit=unit, now=ctx.now, current_quarter=_current_quarter(ctx))
    _ask_for_approval(ctx, kr, edited=False)


def _edit_kr(ctx: Context, given: list[str]) -> None:
    kr_id = parse_id(given[0]) if given else None
    if kr_id is None or len(given) < 2:
        raise OkrError("kr_format")
    title, target, unit = parse_kr_text(" ".join(given[1:]))
    kr = edit_kr(ctx.session, kr_id=kr_id, owner=ctx.person.userid, title=title, target=target, unit=unit,
                 now=ctx.now)
    _ask_for_approval(ctx, kr, edited=True)


def _ask_for_approval(ctx: Context, kr: OkrKeyResult, *, edited: bool) -> None:
    view = kr_view(ctx.session, kr)
    approvers = manager_or_admins(ctx.session, kr.owner, ctx.config.org.admins)
    lines = ctx.render("okr/approval_card.txt.j2", kr=view).splitlines()
    text = ctx.render("okr/approval_text.txt.j2", kr=view)
    for approver in approvers:
        ctx.send_card_to(approver, approval_card(view, lines), kr_subject(kr.id), text)
    names = names_of(ctx.session, approvers)
    ctx.reply("okr/kr_submitted.txt.j2", kr=view, edited=edited, approvers=[names.get(a, a) for a in approvers])


def _progress(ctx: Context, given: list[str]) -> None:
    kr_id = parse_id(given[0]) if given else None
    value = parse_number(given[1]) if len(given) > 1 else None
    if kr_id is None or value is None:
        raise OkrError("progress_format")
    view = record_kr_progress(ctx.session, kr_id, value, " ".join(given[2:]), ctx.now, by=ctx.person.userid,
                              source="command")
    ctx.reply("okr/progress_recorded.txt.j2", kr=view)


def _review(ctx: Context, given: list[str], *, approve: bool) -> None:
    ctx.require(Role.MANAGER, OkrError.TEMPLATE, code="managers_only", p={"action": "review_kr"})
    kr_id = parse_id(given[0]) if given else None
    if kr_id is None:
        raise OkrError("unknown_kr", id=given[0] if given else "")
    _apply_review(ctx, kr_id, approve=approve, note=" ".join(given[1:]))


def kr_subject(kr_id: int) -> str:
    """What an approval card is about (bot.wecom.card_state): every approver's copy is finished together."""
    return f"okr:{kr_id}"


def _apply_review(ctx: Context, kr_id: int, *, approve: bool, note: str) -> None:
    kr = review_kr(ctx.session, kr_id=kr_id, by=ctx.person, approve=approve, note=note, now=ctx.now)
    ctx.finish_cards(kr_subject(kr_id), "approved" if approve else "returned")
    view = kr_view(ctx.session, kr)
    ctx.send_to(kr.owner, "okr/kr_reviewed.txt.j2", kr=view, reviewer=ctx.person.name)
    ctx.reply("okr/review_done.txt.j2", kr=view)


@router.card("okr:")
def review_by_card(ctx: Context) -> None:
    """okr:approve:<id> and okr:return:<id> from the approval card."""
    _, action, raw_id = (ctx.update.event_key.split(":") + ["", ""])[:3]
    kr_id = parse_id(raw_id)
    if kr_id is None or action not in ("approve", "return"):
        ctx.reply("card_expired.txt.j2")
        return
    _apply_review(ctx, kr_id, approve=action == "approve", note="")
