"""/okr and /kr: department objectives, personal key results, approval by the manager, progress."""
from __future__ import annotations

from sqlalchemy import select

from bot.appraisal.okr import (
    OkrError,
    add_kr,
    add_objective,
    approval_card,
    approver_for,
    department_tree,
    edit_kr,
    find_department,
    kr_view,
    kr_views,
    member_tree,
    parse_id,
    parse_kr_text,
    parse_number,
    parse_quarter,
    quarter_of,
    record_kr_progress,
    review_kr,
    team_tree,
)
from bot.storage.models import Department, Member, OkrKeyResult
from bot.chat.routing import Context, Role, Router

router = Router("okr")

ADD_WORDS = ("add", "添加", "新增")
OBJECTIVE_WORDS = ("objective", "o", "目标")
TEAM_WORDS = ("team", "团队")
DEPARTMENT_WORDS = ("dept", "department", "部门")


def _current_quarter(ctx: Context) -> str:
    return quarter_of(ctx.now.astimezone(ctx.config.schedule.zone).date())


def _take_quarter(ctx: Context, words: list[str]) -> tuple[str, list[str]]:
    """A quarter such as 2026-Q4 anywhere among the words; else the current one."""
    for index, word in enumerate(words):
        quarter = parse_quarter(word)
        if quarter is not None:
            return quarter, words[:index] + words[index + 1:]
    return _current_quarter(ctx), words


@router.command("/okr", "/目标", role=Role.MEMBER)
def show_or_add_objective(ctx: Context) -> None:
    words = ctx.args.split()
    if len(words) >= 2 and words[0].lower() in OBJECTIVE_WORDS and words[1].lower() in ADD_WORDS:
        _add_objective(ctx, ctx.args.split(None, 2)[2] if len(words) > 2 else "")
        return
    quarter, words = _take_quarter(ctx, words)
    scope = words[0].lower() if words else ""
    if scope in TEAM_WORDS:
        if ctx.person.role < Role.MANAGER:
            raise OkrError("managers_only", action="查看团队 OKR")
        objectives = team_tree(ctx.session, ctx.person.userid, quarter)
        ctx.reply("okr/tree.md.j2", scope="team", quarter=quarter, objectives=objectives, person=ctx.person)
    elif scope in DEPARTMENT_WORDS:
        objectives = department_tree(ctx.session, ctx.person.userid, quarter)
        ctx.reply("okr/tree.md.j2", scope="department", quarter=quarter, objectives=objectives, person=ctx.person)
    else:
        objectives = member_tree(ctx.session, ctx.person.userid, quarter)
        ctx.reply("okr/tree.md.j2", scope="member", quarter=quarter, objectives=objectives, person=ctx.person)


def _add_objective(ctx: Context, text: str) -> None:
    if ctx.person.role < Role.MANAGER:
        raise OkrError("managers_only", action="添加部门目标")
    words = text.split()
    quarter, words = _take_quarter(ctx, words)
    department_id: int | None = None
    if words and words[0].startswith(("@", "＠")):
        if ctx.person.role < Role.ADMIN:
            raise OkrError("managers_only", action="为其他部门添加目标")
        department_id = find_department(ctx.session, words[0][1:]).id
        words = words[1:]
    if department_id is None:
        member = ctx.session.get(Member, ctx.person.userid)
        if member is None or member.main_department is None:
            raise OkrError("not_a_member")
        department_id = member.main_department
    objective = add_objective(ctx.session, title=" ".join(words), quarter=quarter, department_id=department_id,
                              by=ctx.person.userid, now=ctx.now)
    department = ctx.session.get(Department, department_id)
    ctx.reply("okr/objective_added.txt.j2", objective=objective,
              department=department.name if department else str(department_id))


@router.command("/kr", "/关键结果", role=Role.MEMBER)
def key_results(ctx: Context) -> None:
    words = ctx.args.split()
    action = words[0].lower() if words else ""
    if action in ("add", "添加", "新增"):
        _add_kr(ctx, words[1:])
    elif action in ("edit", "修改"):
        _edit_kr(ctx, words[1:])
    elif action in ("progress", "进展", "p"):
        _progress(ctx, words[1:])
    elif action in ("approve", "批准", "通过"):
        _review(ctx, words[1:], approve=True)
    elif action in ("return", "退回", "reject"):
        _review(ctx, words[1:], approve=False)
    else:
        rows = list(ctx.session.scalars(select(OkrKeyResult).where(
            OkrKeyResult.owner == ctx.person.userid, OkrKeyResult.quarter == _current_quarter(ctx))
            .order_by(OkrKeyResult.id)))
        ctx.reply("okr/kr_usage.txt.j2", person=ctx.person, krs=kr_views(ctx.session, rows))


def _add_kr(ctx: Context, words: list[str]) -> None:
    objective_id = parse_id(words[0]) if words else None
    if objective_id is None or len(words) < 2:
        raise OkrError("kr_format")
    title, target, unit = parse_kr_text(" ".join(words[1:]))
    kr = add_kr(ctx.session, owner=ctx.person.userid, objective_id=objective_id, title=title, target=target,
                unit=unit, now=ctx.now, current_quarter=_current_quarter(ctx))
    _ask_for_approval(ctx, kr, edited=False)


def _edit_kr(ctx: Context, words: list[str]) -> None:
    kr_id = parse_id(words[0]) if words else None
    if kr_id is None or len(words) < 2:
        raise OkrError("kr_format")
    title, target, unit = parse_kr_text(" ".join(words[1:]))
    kr = edit_kr(ctx.session, kr_id=kr_id, owner=ctx.person.userid, title=title, target=target, unit=unit,
                 now=ctx.now)
    _ask_for_approval(ctx, kr, edited=True)


def _ask_for_approval(ctx: Context, kr: OkrKeyResult, *, edited: bool) -> None:
    view = kr_view(ctx.session, kr)
    approvers = approver_for(ctx.session, kr.owner, ctx.config.org.admins)
    lines = ctx.render("okr/approval_card.txt.j2", kr=view).splitlines()
    text = ctx.render("okr/approval_text.txt.j2", kr=view)
    for approver in approvers:
        ctx.send_card_to(approver, approval_card(view, lines), kr_subject(kr.id), text)
    names = {m.userid: m.name for m in ctx.session.scalars(select(Member).where(Member.userid.in_(approvers)))}
    ctx.reply("okr/kr_submitted.txt.j2", kr=view, edited=edited, approvers=[names.get(a, a) for a in approvers])


def _progress(ctx: Context, words: list[str]) -> None:
    kr_id = parse_id(words[0]) if words else None
    value = parse_number(words[1]) if len(words) > 1 else None
    if kr_id is None or value is None:
        raise OkrError("progress_format")
    view = record_kr_progress(ctx.session, kr_id, value, " ".join(words[2:]), ctx.now, by=ctx.person.userid,
                              source="command")
    ctx.reply("okr/progress_recorded.txt.j2", kr=view)


def _review(ctx: Context, words: list[str], *, approve: bool) -> None:
    if ctx.person.role < Role.MANAGER:
        raise OkrError("managers_only", action="批准或退回 KR")
    kr_id = parse_id(words[0]) if words else None
    if kr_id is None:
        raise OkrError("unknown_kr", id=words[0] if words else "")
    _apply_review(ctx, kr_id, approve=approve, note=" ".join(words[1:]))


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
