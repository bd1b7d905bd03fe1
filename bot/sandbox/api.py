"""The sandbox's page at / and its JSON API under /sandbox/api/, served by the bot's own Flask app on one port."""
from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_from_directory

from bot.sandbox.running import CallbackRefused, CardAlreadyHandled, Sandbox, UnknownCard
from bot.sandbox.scheduler import JobOutcome, ScheduledEvent
from bot.templates import render

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE = "sandbox.html"
MAX_ADVANCE_HOURS = 24 * 62  # two months per request: long enough to play a month, short enough to answer
MAX_TEXT_CHARS = 2000
LONG_POLL_SECONDS = 25.0


def create_sandbox_blueprint(sandbox: Sandbox) -> Blueprint:
    """The page at / and its JSON API under /sandbox/api/, on the bot's own Flask app (one port)."""
    blueprint = Blueprint("sandbox", __name__, static_folder=str(STATIC_DIR), static_url_path="/sandbox/static")
    locale = sandbox.bot.config.bot.locale

    def error(code: str, status: int, **params: Any) -> tuple[Response, int]:
        return jsonify(error=code, message=render("sandbox/api_error.txt.j2", locale, code=code, **params)), status

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    def as_person(action: Callable[[dict[str, Any], str], Any]) -> Callable[[], Any]:
        """A POST that someone of the organisation makes: `userid` names them; the bot must take the callback."""
        @functools.wraps(action)
        def route() -> Any:
            data = body()
            userid = data.get("userid")
            if not isinstance(userid, str) or not sandbox.knows(userid):
                return error("unknown_person", 404, userid=str(data.get("userid", "")))
            try:
                return action(data, userid)
            except CallbackRefused as refused:
                return error("callback_refused", 502, status=refused.status)
        return route

    @blueprint.get("/")
    def page() -> Response:
        response = send_from_directory(STATIC_DIR, PAGE, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.get("/sandbox/api/people")
    def people() -> Any:
        return jsonify(people=sandbox.people(), bot_name=render("sandbox/bot_name.txt.j2", locale))

    @blueprint.get("/sandbox/api/messages")
    def messages() -> Any:
        try:
            after = int(request.args.get("after", "0"))
            wait = min(max(float(request.args.get("wait", "0")), 0.0), LONG_POLL_SECONDS)
        except ValueError:
            return error("bad_cursor", 400)
        userid = request.args.get("userid") or None
        if userid is not None and not sandbox.knows(userid):
            return error("unknown_person", 404, userid=userid)
        cursor, entries, cards = sandbox.transcript.changes_since(after, userid, wait)
        return jsonify(cursor=cursor, entries=[e.to_json() for e in entries],
                       cards={owner: {task: state.to_json() for task, state in states.items()}
                              for owner, states in cards.items()},
                       clock_version=sandbox.scheduler.version)

    @blueprint.post("/sandbox/api/send")
    @as_person
    def send(data: dict[str, Any], userid: str) -> Any:
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            return error("empty_text", 400)
        if len(text) > MAX_TEXT_CHARS:
            return error("text_too_long", 400, limit=MAX_TEXT_CHARS)
        return jsonify(entry=sandbox.send_text(userid, text).to_json())

    @blueprint.post("/sandbox/api/enter")
    @as_person
    def enter(data: dict[str, Any], userid: str) -> Any:
        return jsonify(sent=sandbox.enter(userid))

    @blueprint.post("/sandbox/api/click")
    @as_person
    def click(data: dict[str, Any], userid: str) -> Any:
        task_id, event_key = data.get("task_id"), data.get("event_key")
        if not isinstance(task_id, str) or not isinstance(event_key, str):
            return error("unknown_card", 404)
        selected = data.get("selected_items") or {}
        if not isinstance(selected, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(o, str) for o in v)
                for k, v in selected.items()):
            return error("bad_selection", 400)
        try:
            state = sandbox.click(userid, task_id, event_key, selected)
        except UnknownCard:
            return error("unknown_card", 404)
        except CardAlreadyHandled:
            return error("card_already_handled", 409)
        return jsonify(card=state.to_json())

    @blueprint.get("/sandbox/api/time")
    def get_time() -> Any:
        return jsonify(_time_json(sandbox))

    @blueprint.post("/sandbox/api/time/advance")
    def advance() -> Any:
        hours = body().get("hours")
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= MAX_ADVANCE_HOURS:
            return error("bad_hours", 400, limit=MAX_ADVANCE_HOURS)
        before = sandbox.now()
        outcomes = sandbox.scheduler.advance(timedelta(hours=hours))
        return jsonify(_moved(sandbox, before, outcomes, locale))

    @blueprint.post("/sandbox/api/time/jump")
    def jump() -> Any:
        job_id = body().get("job_id")
        if job_id is not None and (not isinstance(job_id, str)
                                   or job_id not in {spec.id for spec in sandbox.scheduler.calendar_jobs()}):
            return error("unknown_job", 404, job_id=str(job_id))
        event = sandbox.scheduler.next_event(job_id)
        if event is None:
            return error("no_upcoming_event", 409)
        before = sandbox.now()
        outcomes = sandbox.scheduler.jump_to(event.at)
        return jsonify(_moved(sandbox, before, outcomes, locale, target=event))

    return blueprint


def _moved(sandbox: Sandbox, before: datetime, outcomes: list[JobOutcome], locale: str,
           target: ScheduledEvent | None = None) -> dict[str, Any]:
    after = sandbox.now()
    worth_telling = [o for o in outcomes if o.failed or (o.ran and not o.housekeeping)]
    return {
        "time": _time_json(sandbox),
        "ran": [{"job_id": o.job_id, "description": o.description, "at": o.at.isoformat(), "period": o.period,
                 "ran": o.ran, "failed": o.failed, "detail": o.detail} for o in worth_telling],
        "summary": render("sandbox/time_moved.txt.j2", locale, before=before, after=after, target=target,
                          ran=[o for o in worth_telling if o.ran], failed=[o for o in worth_telling if o.failed]),
    }


def _time_json(sandbox: Sandbox) -> dict[str, Any]:
    """Sandbox time for the page's top bar: now, whether it runs, and the calendar jobs coming next."""
    now = sandbox.now()
    locale = sandbox.bot.config.bot.locale
    upcoming = sandbox.scheduler.upcoming()
    return {
        "now": now.isoformat(), "now_ms": _ms(now), "offset_minutes": _offset_minutes(now),
        "running": sandbox.clock.running, "text": render("sandbox/moment.txt.j2", locale, at=now, style="long"),
        "version": sandbox.scheduler.version,
        "next": _event_json(upcoming[0], locale) if upcoming else None,
        "upcoming": [_event_json(event, locale) for event in upcoming],
    }


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


def _event_json(event: ScheduledEvent, locale: str) -> dict[str, Any]:
    return {"job_id": event.job_id, "description": event.description, "at": event.at.isoformat(),
            "at_ms": _ms(event.at), "text": render("sandbox/moment.txt.j2", locale, at=event.at, style="short")}


