"""A running sandbox: the bot, the fake WeCom and the sandbox clock together, and what a person does in it."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.app import KpiBot
from bot.appraisal.assignment import cached_scheme, department_parents, scheme_name_for
from bot.appraisal.people import Role
from bot.chat.dispatcher import load_person
from bot.fakes.callbacks import CallbackSender
from bot.fakes.wecom import CardUpdate, FakeWeCom
from bot.sandbox import demo_org
from bot.sandbox.scheduler import SandboxClock, SandboxScheduler
from bot.sandbox.state import SandboxState
from bot.sandbox.transcript import CardState, Transcript, TranscriptEntry
from bot.storage.db import transaction
from bot.storage.models import Department, Member
from bot.templates import render

log = logging.getLogger(__name__)

SANDBOX_HOST = "127.0.0.1"  # never anything else: the page acts as anyone in the organisation


class Sandbox:
    """A running sandbox: `url` is the page; `bot`, `fake`, `clock`, `scheduler` are the live parts."""

    def __init__(self, *, bot: KpiBot, fake: FakeWeCom, clock: SandboxClock, data_dir: Path,
                 state: SandboxState) -> None:
        self.bot = bot
        self.fake = fake
        self.clock = clock
        self.data_dir = data_dir
        self.state = state
        self.transcript = Transcript(data_dir / "transcript.jsonl")
        self.scheduler = SandboxScheduler(bot, clock, on_change=self._time_moved)
        self.port = 0
        self.callbacks: CallbackSender | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._card_updates_seen = 0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{SANDBOX_HOST}:{self.port}/"

    @property
    def callback_url(self) -> str:
        return f"http://{SANDBOX_HOST}:{self.port}/wecom/callback"

    @property
    def zone(self) -> ZoneInfo:
        return self.bot.config.schedule.zone

    def now(self) -> datetime:
        return self.clock.now().astimezone(self.zone)

    # -- lifecycle ----------------------------------------------------------------------------------
    def _connect(self, port: int) -> None:
        self.port = port
        wecom = self.bot.config.wecom
        self.callbacks = CallbackSender(self.callback_url, token=wecom.token.reveal(),
                                        encoding_aes_key=wecom.encoding_aes_key.reveal(), corp_id=wecom.corp_id,
                                        agent_id=wecom.agent_id, clock=self.clock.now, timeout=10.0)
        self._unsubscribe = self.fake.subscribe(self.transcript.add_delivery)
        self._watcher = threading.Thread(target=self._watch_card_updates, name="sandbox-cards", daemon=True)
        self._watcher.start()

    def _time_moved(self) -> None:
        self.save_state()
        self.transcript.touch()

    def save_state(self) -> None:
        self.state.now = self.clock.now()
        try:
            self.state.save()
        except OSError as error:
            log.warning("could not save sandbox state: %s", error)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.save_state()
        self._stop.set()
        self.transcript.close()  # long-polls return now instead of holding the server's threads
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        try:
            self.bot.stop()  # HTTP, then the scheduler (ours), inbox, sender, engine
        except OSError as error:
            # Rarely waitress's wake-up pipe is already gone when KpiBot.stop_http pulls it (seen about
            # once in 25 runs of the browser tests, never reproduced under instrumentation). HTTP is
            # down either way; stop the rest, which KpiBot.stop would have done after it.
            log.warning("stopping the HTTP server failed (%s); stopping the other parts", error)
            self.scheduler.stop()
            self.bot.inbox.stop()
            self.bot.sender.stop()
            self.bot.engine.dispose()
        self.fake.stop()
        if self.callbacks is not None:
            self.callbacks.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _watch_card_updates(self) -> None:
        """FakeWeCom records update_template_card calls; show each on the card it changes."""
        while not self._stop.wait(0.2):
            updates = self.fake.card_updates()
            for update in updates[self._card_updates_seen:]:
                self._apply_card_update(update)
            self._card_updates_seen = len(updates)

    def _apply_card_update(self, update: CardUpdate) -> None:
        for userid in update.userids or tuple(self.transcript.holders(update.task_id)):
            if update.template_card is not None:
                self.transcript.update_card(userid, update.task_id, card=update.template_card,
                                            clicked_key=None, replace_name=None)
            else:
                self.transcript.update_card(userid, update.task_id, replace_name=update.button_replace_name)

    # -- people -------------------------------------------------------------------------------------
    def people(self) -> list[dict[str, Any]]:
        """Everyone the bot knows from the org sync, with role, team (main department) and appraisal scheme."""
        demo_order = {person.userid: index for index, person in enumerate(demo_org.DEMO_PEOPLE)}
        rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        with transaction(self.bot.sessions) as session:
            departments = {d.id: d for d in session.scalars(select(Department))}
            parents = department_parents(session)
            for member in session.scalars(select(Member).where(Member.active.is_(True))):
                person = load_person(session, member.userid, self.bot.config)
                department = departments.get(member.main_department or 0)
                scheme = scheme_name_for(member.userid, member.department_ids or (), parents,
                                         self.bot.config.appraisal)
                order = ((department.sort_order, department.id) if department else (0, 0), -int(person.role),
                         demo_order.get(member.userid, len(demo_order)), member.name)
                rows.append((order, {
                    "userid": member.userid, "name": member.name, "position": member.position,
                    "role": person.role.name.lower(), "role_label": person.role.label,
                    "team": department.name if department else "", "team_id": member.main_department,
                    "scheme": scheme, "scheme_name": _scheme_name(scheme),
                }))
        return [person for _, person in sorted(rows, key=lambda row: row[0])]

    def knows(self, userid: str) -> bool:
        try:
            self.fake.member(userid)
        except KeyError:
            return False
        return True

    # -- talking to the bot -------------------------------------------------------------------------
    def send_text(self, userid: str, text: str) -> TranscriptEntry:
        """Type `text` as `userid`: a real encrypted callback to the bot's own /wecom/callback."""
        assert self.callbacks is not None
        entry = self.transcript.add(userid, "to_bot", "text", {"content": text}, self.now())
        response = self.callbacks.text(userid, text)
        if response.status != 200:
            raise CallbackRefused(response.status)
        return entry

    def enter(self, userid: str) -> bool:
        """The person opens the app for the first time: WeCom's enter_agent event (the bot welcomes them)."""
        assert self.callbacks is not None
        if self.transcript.has_conversation(userid):
            return False
        response = self.callbacks.event(userid, "enter_agent", "")
        if response.status != 200:
            raise CallbackRefused(response.status)
        return True

    def click(self, userid: str, task_id: str, event_key: str,
              selected_items: dict[str, list[str]] | None = None) -> CardState:
        """Press a card's button (or submit its choices): a real template_card_event callback."""
        assert self.callbacks is not None
        entry = self.transcript.card(userid, task_id)
        if entry is None:
            raise UnknownCard(task_id)
        state = self.transcript.card_state(userid, task_id)
        if state is not None and (state.clicked_key is not None or state.replace_name is not None):
            raise CardAlreadyHandled(task_id)
        card = state.card if state is not None and state.card is not None else entry.payload
        if event_key not in _card_keys(card):
            raise UnknownCard(task_id)
        try:
            response_code = self.fake.issue_response_code(task_id)
        except ValueError:
            response_code = ""  # sent by the fake of an earlier run: the click still reaches the bot
        state = self.transcript.update_card(userid, task_id, clicked_key=event_key)
        response = self.callbacks.card_click(userid, event_key=event_key, task_id=task_id,
                                             card_type=str(card.get("card_type") or "button_interaction"),
                                             response_code=response_code, selected_items=selected_items or None)
        if response.status != 200:
            self.transcript.update_card(userid, task_id, clicked_key=None)
            raise CallbackRefused(response.status)
        return state

    def banner(self) -> str:
        """What `kpibot sandbox` prints once everything is up."""
        people = self.people()
        roles: dict[str, int] = {}
        for person in people:  # already ordered admin, managers, members within each team
            roles[person["role_label"]] = roles.get(person["role_label"], 0) + 1
        order = [role.label for role in sorted(Role, reverse=True)]
        with transaction(self.bot.sessions) as session:
            admin = session.get(Member, demo_org.DEMO_ADMINS[0])
            department = session.get(Department, admin.main_department) if admin and admin.main_department else None
        return render("sandbox/banner.txt.j2", self.bot.config.bot.locale, url=self.url, people=people,
                      roles=sorted(roles.items(), key=lambda item: order.index(item[0])),
                      organisation=department.name if department else "", now=self.now(),
                      data_dir=str(self.data_dir))


class CallbackRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class UnknownCard(Exception):
    pass


class CardAlreadyHandled(Exception):
    pass


def _scheme_name(key: str) -> str:
    """The scheme's own display name (e.g. 执行层考核方案), or its key when it cannot be read."""
    try:
        return cached_scheme(key).name or key
    except Exception:  # noqa: BLE001 - a display nicety; the key still identifies the scheme
        return key


def _card_keys(card: dict[str, Any]) -> set[str]:
    keys = {str(button.get("key")) for button in card.get("button_list") or [] if isinstance(button, dict)}
    submit = card.get("submit_button")
    if isinstance(submit, dict) and submit.get("key"):
        keys.add(str(submit["key"]))
    return keys


