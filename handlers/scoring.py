"""Managers' commands: /score (team status, a member's breakdown with a guided rating walk, one rating or waiver),
/data and /target (actuals and targets) and /calibrate; each limited to the manager's own team and audited."""
from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from bot.appraisal.entries import (EntryError, KeyRef, appraisal_month, check_value, decimal_text, due_ratings, ensure_open,
                            find_key, find_member, is_waive_word, latest_entry, parse_amount,
                            parse_periods, parse_rating, period_for, period_of_cycle, record,
                            unusual_against_history, waive_in_bulk)
from bot.appraisal.people import Role
from bot.appraisal.periods import looks_like_period, parse_period
from bot.appraisal.results.calibrate import calibrate, default_calibration_month
from bot.appraisal.results.compute import compute, latest_entries
from bot.appraisal.results.roster import Roster
from bot.appraisal.results.schedule import publish_moment
from bot.appraisal.results.views import ROWS_SHOWN, member_view, missing_labels, number_text, period_label
from bot.appraisal.workcalendar import local, month_days, week_of
from bot.chat.conversation import ConversationSpec
from bot.chat.routing import Context, Router
from bot.storage.models import DataEntry, SelfReview, WeeklyReport
from bot.templates import trim, words
from scoring import WAIVED, Indicator, Period

router = Router("scoring")

FLOW = "score_walk"
HIGHLIGHT_CHARS = 60


_HEAD_AND_REST = re.compile(r"^\s*(\S+?)(?:[\s,，、:：]+(.*))?$", re.S)


class WalkState(StrEnum):
    RATING = "rating"  # rating keys[index]


Handler = Callable[[Context], None]


def _usage(ctx: Context, command: str) -> None:
    ctx.reply("scoring/usage.txt.j2", command=command)


def _split_period(text: str, month: Period) -> tuple[str | None, str]:
    """An optional leading period (2026-11, 11月, 2026-Q4...) and the rest (a note)."""
    head, _, rest = text.strip().partition(" ")
    if head and looks_like_period(head):  # a wrong period (13月) is reported as one, not taken for the note
        return head, rest.strip()
    return None, text.strip()


# -- /score -------------------------------------------------------------------------------------------------------
@router.command("/score", *words("scoring.score"), role=Role.MANAGER)
def score_command(ctx: Context) -> None:
    month = appraisal_month(ctx.config, ctx.now)
    roster = Roster.load(ctx.session, ctx.config)
    parts = ctx.args.split(None, 3)
    if not parts:
        _status(ctx, roster, month)
        return
    member = find_member(roster.org, parts[0], viewer=ctx.person.userid)
    if len(parts) == 1:
        _breakdown(ctx, roster, member.userid, month)
        return
    if len(parts) == 2:
        _usage(ctx, "/score")
        return
    ref = find_key(roster.scheme(member.userid), parts[1])
    reason = parts[3].strip() if len(parts) == 4 else ""
    reply = _rate(ctx, member.userid, member.name, ref, parts[2], reason, month)
    ctx.reply("scoring/saved.txt.j2", **reply)


def _rate(ctx: Context, userid: str, name: str, ref: KeyRef, answer: str, reason: str, month: Period) -> dict[str, Any]:
    """Store one rating or waiver (reason required); returns the confirmation's variables."""
    waive = is_waive_word(answer)
    # A guardrail metric may be waived (it then deducts nothing and is not missing), never rated.
    if not waive and not ref.manager_rated:
        raise EntryError("key.not_rated", name=ref.name)
    rating = None if waive else parse_rating(answer)
    if not reason:
        raise EntryError("reason.missing", example=ctx.render("scoring/rating_example.txt.j2", member=name,
                                                              name=ref.name, waive=waive, rating=rating))
    period = period_for(ref, None, month)
    existing = latest_entry(ctx.session, userid, ref.key, period, "value")
    ensure_open(ctx.session, period, userid, replaces=existing is not None)
    previous = record(ctx.session, userid=userid, key=ref.key, period=period, kind="value",
                      value=WAIVED if waive else Decimal(rating), reason=reason, source="score",  # type: ignore[arg-type]
                      actor=ctx.person.userid, now=ctx.now)
    anchor = ref.indicator.anchors.get(rating, "") if rating is not None and ref.indicator is not None else ""
    return {"kind": "waive" if waive else "rating", "member": name, "name": ref.name, "period": period,
            "value": rating, "unit": "", "anchor": anchor, "reason": reason, "note": "", **_previous(previous)}


def _previous(entry: DataEntry | None) -> dict[str, Any]:
    """What scoring/saved.txt.j2 says the entry replaced: nothing, a waiver, or a value."""
    return {"previous": None if entry is None or entry.waived else number_text(entry.value),
            "previous_waived": entry is not None and entry.waived}


def _status(ctx: Context, roster: Roster, month: Period) -> None:
    team = list(roster.org.visible(ctx.person.userid))
    computed = compute(ctx.session, ctx.config, month, roster=roster, userids=team)
    reviewed = set(ctx.session.scalars(select(SelfReview.userid).where(
        SelfReview.month == str(month), SelfReview.submitted_at.is_not(None),
        SelfReview.userid.in_(team)))) if team else set()
    # Ratings of quarterly and annual indicators are entered for their quarter or year, which a month's
    # computation does not read: look them up where they are stored.
    due_periods = sorted({period for u in team for _, period in due_ratings(computed.schemes[u], month)})
    entered, _ = latest_entries(ctx.session, team, due_periods) if team and due_periods else ({}, {})
    rows = []
    for userid in team:
        scheme = computed.schemes[userid]
        appraised = computed.results[userid].appraised  # on leave all month, or everything waived
        unrated = [i.name for i, period in due_ratings(scheme, month)
                   if appraised and (userid, i.key, period) not in entered]
        rows.append({"name": roster.org.name(userid), "scored": not unrated, "unrated": unrated,
                     "missing": missing_labels(computed, userid), "reviewed": userid in reviewed,
                     "appraised": appraised})
    counts = {"scored": sum(r["scored"] for r in rows), "complete": sum(not r["missing"] for r in rows),
              "reviewed": sum(r["reviewed"] for r in rows)}
    # Whoever still needs something first; a long list (an admin's whole department) is cut, the counts are not.
    rows.sort(key=lambda r: (r["scored"] and not r["missing"], r["name"]))
    ctx.reply("scoring/status.md.j2", viewer=ctx.person.name, period_label=period_label(month),
              rows=rows[:ROWS_SHOWN], more=max(0, len(rows) - ROWS_SHOWN), total=len(rows), counts=counts)


def _breakdown(ctx: Context, roster: Roster, userid: str, month: Period) -> None:
    computed = compute(ctx.session, ctx.config, month, roster=roster, userids=[userid])
    scheme = computed.schemes[userid]
    review = ctx.session.scalar(select(SelfReview).where(SelfReview.userid == userid,
                                                         SelfReview.month == str(month)))
    names = {i.key: i.name for i in scheme.indicators}
    review_view = None
    if review is not None and review.submitted_at is not None:
        review_view = {"ratings": [(names.get(k, k), v) for k, v in (review.ratings or {}).items()],
                       "achievements": review.achievements, "improvements": review.improvements}
    ctx.reply("scoring/breakdown.md.j2", member=roster.org.name(userid), period_label=period_label(month),
              scheme_name=scheme.name, r=member_view(computed, roster, userid), review=review_view,
              highlights=_highlights(ctx, userid, month))
    due = due_ratings(scheme, month)
    if not due:
        ctx.reply("scoring/walk_done.txt.j2", recorded=None, member=roster.org.name(userid), total=0, ratings=[],
                  period=str(month))
        return
    ctx.conversation.start(FLOW, WalkState.RATING, {"member": userid, "month": str(month),
                                                    "keys": [i.key for i, _ in due], "index": 0})
    _ask(ctx, roster, None)


def _highlights(ctx: Context, userid: str, month: Period) -> list[dict[str, str]]:
    """The first answer of each weekly report submitted in the month's weeks: what the member actually did."""
    weeks = sorted({week_of(day) for day in month_days(month.year, month.index)})
    key = ctx.config.weekly_report.questions[0].key
    reports = ctx.session.scalars(select(WeeklyReport).where(WeeklyReport.userid == userid,
                                                             WeeklyReport.week.in_(weeks),
                                                             WeeklyReport.status == "submitted")
                                  .order_by(WeeklyReport.week)).all()
    found = []
    for report in reports:
        text = trim((report.answers or {}).get(key, ""), HIGHLIGHT_CHARS)
        if text:
            found.append({"week": report.week, "text": text})
    return found


# -- the guided walk through the manager-rated indicators ---------------------------------------------------------
def _walk_item(ctx: Context, roster: Roster) -> tuple[str, Period, Indicator | None, int, int]:
    data = ctx.conversation.data
    userid, month = data["member"], Period.parse(data["month"])
    keys, index = list(data.get("keys", [])), int(data.get("index", 0))
    scheme = roster.scheme(userid)
    indicator = next((i for i in scheme.indicators if keys[index:] and i.key == keys[index]), None)
    return userid, month, indicator, index, len(keys)


def _ask(ctx: Context, roster: Roster, recorded: str | None) -> None:
    userid, month, indicator, index, total = _walk_item(ctx, roster)
    name = roster.org.name(userid)
    if indicator is None:
        scheme = roster.scheme(userid)
        ratings = []
        for item, period in due_ratings(scheme, month):
            ratings.append((item.name, _current_rating(ctx, userid, item.key, period)))
        ctx.conversation.end()
        ctx.reply("scoring/walk_done.txt.j2", recorded=recorded, member=name, total=total, ratings=ratings,
                  period=str(month))
        return
    period = str(period_of_cycle(indicator.cycle, month))
    current = _current_rating(ctx, userid, indicator.key, period)
    ctx.conversation.move(WalkState.RATING)
    ctx.reply("scoring/walk_question.txt.j2", recorded=recorded, member=name, number=index + 1, total=total,
              indicator=indicator, period=period, current=current,
              anchors=[(level, indicator.anchors[level]) for level in range(1, 6) if level in indicator.anchors])


def _current_rating(ctx: Context, userid: str, key: str, period: str) -> dict[str, Any] | None:
    """The stored rating or waiver, as the walk's templates show it (None: not rated yet)."""
    entry = latest_entry(ctx.session, userid, key, period, "value")
    if entry is None:
        return None
    return {"waived": entry.waived, "value": "" if entry.waived else number_text(entry.value)}


def on_walk_answer(ctx: Context) -> None:
    roster = Roster.load(ctx.session, ctx.config)
    userid, month, indicator, index, total = _walk_item(ctx, roster)
    if indicator is None or not roster.org.can_manage(ctx.person.userid, userid):
        ctx.conversation.end()
        ctx.reply("scoring/error.txt.j2", code="member.not_in_team", p={"text": roster.org.name(userid), "own": False})
        return
    text = ctx.update.content.strip()
    if text.lower().strip("。. ") in words("scoring.skip"):
        ctx.conversation.move(WalkState.RATING, index=index + 1)
        _ask(ctx, roster, ctx.render("scoring/walk_skipped.txt.j2", name=indicator.name))
        return
    match = _HEAD_AND_REST.match(text)
    head, reason = (match.group(1), (match.group(2) or "").strip()) if match else (text, "")
    ref = find_key(roster.scheme(userid), indicator.key)
    try:
        saved = _rate(ctx, userid, roster.org.name(userid), ref, head, reason, month)
    except EntryError as error:
        # One message, the problem above the same question: WeCom drops an identical message sent twice in a row.
        _ask(ctx, roster, ctx.render("scoring/error.txt.j2", code=error.code, p=error.params))
        return
    ctx.conversation.move(WalkState.RATING, index=index + 1)
    _ask(ctx, roster, ctx.render("scoring/saved.txt.j2", **saved))


router.conversation(ConversationSpec(name=FLOW, states={WalkState.RATING: on_walk_answer}))


# -- /data and /target ------------------------------------------------------------------------------------------------
CONFIRM_FLOW = "data_confirm"


class ConfirmState(StrEnum):
    ASKED = "asked"  # an unusual value waits for 确认


def _enter(ctx: Context, command: str, kind: str) -> None:
    parts = ctx.args.split(None, 3)
    if len(parts) < 3:
        _usage(ctx, command)
        return
    month = appraisal_month(ctx.config, ctx.now)
    roster = Roster.load(ctx.session, ctx.config)
    member = find_member(roster.org, parts[0], viewer=ctx.person.userid)
    ref = find_key(roster.scheme(member.userid), parts[1])
    period_text, note = _split_period(parts[3] if len(parts) == 4 else "", month)
    if kind == "target":
        if not ref.takes_target:
            raise EntryError("target.unused", name=ref.name)
        value: Decimal = parse_amount(parts[2])
    else:
        if ref.manager_rated:
            raise EntryError("key.use_score", name=ref.name)
        if is_waive_word(parts[2]):
            raise EntryError("value.use_waive")
        value = Decimal(parse_rating(parts[2])) if ref.is_rating else parse_amount(parts[2])
    check_value(ref, value, kind)
    period = period_for(ref, period_text, month)
    existing = latest_entry(ctx.session, member.userid, ref.key, period, kind)
    ensure_open(ctx.session, period, member.userid, replaces=existing is not None)
    if kind == "value" and not ref.is_rating:
        team = roster.org.direct_team(roster.team(member.userid)) if roster.team(member.userid) else []
        usual = unusual_against_history(ctx.session, ref, member.userid, team, period, value)
        if usual is not None:
            ctx.conversation.start(CONFIRM_FLOW, ConfirmState.ASKED, {
                "member": member.userid, "key": ref.key, "period": period, "value": decimal_text(value),
                "note": note})
            ctx.reply("scoring/confirm_unusual.txt.j2", member=member.name, name=ref.name, period=period,
                      value=number_text(value), unit=ref.unit, usual=number_text(usual))
            return
    _save_entry(ctx, member.userid, member.name, ref, period, kind, value, note)


def _save_entry(ctx: Context, userid: str, name: str, ref: KeyRef, period: str, kind: str, value: Decimal,
                note: str) -> None:
    previous = record(ctx.session, userid=userid, key=ref.key, period=period, kind=kind, value=value,
                      reason=note, source="target" if kind == "target" else "data", actor=ctx.person.userid,
                      now=ctx.now)
    ctx.reply("scoring/saved.txt.j2", kind=kind, member=name, name=ref.name, period=period,
              value=number_text(value), unit=ref.unit, anchor="", reason=note, note=note, **_previous(previous))


def on_confirm_answer(ctx: Context) -> None:
    """确认 saves the unusual value asked about (checked again: the period may have closed meanwhile)."""
    data = dict(ctx.conversation.data)
    ctx.conversation.end()
    if ctx.update.content.strip().lower().strip("。.! ！") not in words("scoring.confirm"):
        ctx.reply("scoring/confirm_unusual.txt.j2", member="", name="", period="", value="", unit="", usual="",
                  dropped=True)
        return
    roster = Roster.load(ctx.session, ctx.config)
    userid = data["member"]
    if not roster.org.can_manage(ctx.person.userid, userid):
        raise EntryError("member.not_in_team", text=roster.org.name(userid), own=False)
    ref = find_key(roster.scheme(userid), data["key"])
    existing = latest_entry(ctx.session, userid, ref.key, data["period"], "value")
    ensure_open(ctx.session, data["period"], userid, replaces=existing is not None)
    _save_entry(ctx, userid, roster.org.name(userid), ref, data["period"], "value", Decimal(data["value"]),
                data.get("note", ""))


router.conversation(ConversationSpec(name=CONFIRM_FLOW, states={ConfirmState.ASKED: on_confirm_answer}))


@router.command("/data", *words("scoring.data"), role=Role.MANAGER)
def data_command(ctx: Context) -> None:
    _enter(ctx, "/data", "value")


@router.command("/target", *words("scoring.target"), role=Role.MANAGER)
def target_command(ctx: Context) -> None:
    _enter(ctx, "/target", "target")


# -- /waive (admins): one indicator for several members and periods -------------------------------------------------
@router.command("/waive", *words("scoring.waive"), role=Role.ADMIN)
def waive_command(ctx: Context) -> None:
    parts = ctx.args.split(None, 3)
    if len(parts) < 4:
        _usage(ctx, "/waive")
        return
    key_text, members_text, periods_text, reason = parts
    month = appraisal_month(ctx.config, ctx.now)
    roster = Roster.load(ctx.session, ctx.config)
    if members_text.lower() in words("scoring.all_members"):
        schemes = {u: roster.scheme(u) for u in roster.userids
                   if any(key_text in (i.key, i.name) or i.name.startswith(key_text)
                          for i in roster.scheme(u).indicators)}
    else:
        schemes = {}
        for word in re.split(r"[,，、]", members_text):
            if word.strip():
                member = find_member(roster.org, word, viewer=ctx.person.userid)
                schemes[member.userid] = roster.scheme(member.userid)
    periods = parse_periods(periods_text, month)
    done = waive_in_bulk(ctx.session, schemes, key=key_text, periods=periods, reason=reason, actor=ctx.person.userid,
                         now=ctx.now)
    ctx.reply("scoring/bulk_waived.txt.j2", name=done.name, waived=len(done.waived), unchanged=len(done.unchanged),
              members=len({u for u, _ in done.waived + done.unchanged}),
              periods=sorted({p for _, p in done.waived + done.unchanged}))


# -- /calibrate ---------------------------------------------------------------------------------------------------
@router.command("/calibrate", *words("scoring.calibrate"), role=Role.MANAGER)
def calibrate_command(ctx: Context) -> None:
    month = appraisal_month(ctx.config, ctx.now)
    period_text, rest = _split_period(ctx.args, month)
    parts = rest.split(None, 2)
    if len(parts) < 2:
        _usage(ctx, "/calibrate")
        return
    if period_text is not None:
        period = parse_period(period_text, month)
        if period is None:
            raise EntryError("period.invalid", text=period_text)
    else:
        period = default_calibration_month(ctx.session, month)
    roster = Roster.load(ctx.session, ctx.config)
    member = find_member(roster.org, parts[0], viewer=ctx.person.userid)
    try:
        total = parse_amount(parts[1])
    except EntryError:
        raise EntryError("total.invalid", text=parts[1]) from None
    reason = parts[2].strip() if len(parts) == 3 else ""
    outcome = calibrate(ctx.session, ctx.config, roster, userid=member.userid, period=period, total=total,
                        reason=reason, actor=ctx.person.userid, now=ctx.now)
    ctx.reply("scoring/calibrated.txt.j2", member=member.name, period=str(period), c=outcome, reason=reason.strip(),
              publish_at=local(ctx.config, publish_moment(ctx.config, period)))
