"""How handlers plug in: a Router per handlers/ module, the typed Context every handler receives, roles."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from bot.wecom import card_state, outbox
from bot.clock import Clock
from bot.config import Config
from bot.storage.models import Conversation
from bot.wecom.outbox import Outgoing
from bot.appraisal.people import Person, Role  # noqa: F401 - moved to bot.appraisal.people; importers follow
from bot.errors import UserFacingError  # noqa: F401 - moved to bot.errors; importers follow
from bot.templates import render
from bot.wecom.updates import Update


Handler = Callable[["Context"], None]


@dataclass(frozen=True)
class CommandSpec:
    name: str  # canonical, e.g. "/help"
    aliases: tuple[str, ...]
    handler: Handler
    role: Role


@dataclass(frozen=True)
class ConversationSpec:
    """A conversation declared in one place: its states, what each state does with a message,
    and what happens on /cancel and on timeout."""

    name: str
    states: Mapping[str, Handler]
    on_cancel: Handler | None = None
    on_timeout: Handler | None = None
    timeout: timedelta | None = None  # None: the configured default


@dataclass
class Router:
    name: str
    commands: list[CommandSpec] = field(default_factory=list)
    events: dict[str, Handler] = field(default_factory=dict)
    cards: dict[str, Handler] = field(default_factory=dict)
    conversations: list[ConversationSpec] = field(default_factory=list)

    def command(self, name: str, *aliases: str, role: Role = Role.MEMBER) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.commands.append(CommandSpec(name, aliases, handler, role))
            return handler
        return register

    def event(self, *names: str) -> Callable[[Handler], Handler]:
        """WeCom events by name, e.g. "enter_agent", or "click:<menu key>" for a menu item."""
        def register(handler: Handler) -> Handler:
            for event_name in names:
                self.events[event_name] = handler
            return handler
        return register

    def card(self, key_prefix: str) -> Callable[[Handler], Handler]:
        """Template-card button clicks whose EventKey starts with key_prefix."""
        def register(handler: Handler) -> Handler:
            self.cards[key_prefix] = handler
            return handler
        return register

    def conversation(self, spec: ConversationSpec) -> ConversationSpec:
        self.conversations.append(spec)
        return spec


class ConversationHandle:
    """The member's open conversation, read and written in the handler's own transaction."""

    def __init__(self, session: Session, userid: str, clock: Clock, default_timeout: timedelta) -> None:
        self._session = session
        self._userid = userid
        self._clock = clock
        self._default_timeout = default_timeout
        self._row: Conversation | None = session.get(Conversation, userid)

    @property
    def flow(self) -> str | None:
        return self._row.flow if self._row else None

    @property
    def state(self) -> str | None:
        return self._row.state if self._row else None

    @property
    def data(self) -> dict[str, Any]:
        return dict(self._row.data) if self._row else {}

    def is_expired(self, now: datetime) -> bool:
        return self._row is not None and self._row.expires_at <= now

    def start(self, flow: str, state: str, data: dict[str, Any] | None = None,
              timeout: timedelta | None = None) -> None:
        now = self._clock.now()
        expires = now + (timeout or self._default_timeout)
        if self._row is None:
            self._row = Conversation(userid=self._userid, flow=flow, state=state, data=data or {},
                                     updated_at=now, expires_at=expires)
            self._session.add(self._row)
        else:
            self._row.flow, self._row.state, self._row.data = flow, state, data or {}
            self._row.updated_at, self._row.expires_at = now, expires
            flag_modified(self._row, "data")

    def move(self, state: str, timeout: timedelta | None = None, **changes: Any) -> None:
        """Go to another state, merging changes into the collected data and extending the timeout."""
        if self._row is None:
            raise RuntimeError("no open conversation to move")
        now = self._clock.now()
        self._row.state = state
        if changes:
            self._row.data = {**self._row.data, **changes}
            flag_modified(self._row, "data")
        self._row.updated_at = now
        self._row.expires_at = now + (timeout or self._default_timeout)

    def end(self) -> None:
        if self._row is not None:
            self._session.delete(self._row)
            self._row = None


@dataclass
class Context:
    """Everything a handler needs, and the only way it talks back."""

    session: Session
    update: Update
    person: Person
    clock: Clock
    config: Config
    conversation: ConversationHandle
    reply_key: str  # idempotency prefix for what this update makes us send
    args: str = ""
    services: Mapping[str, Any] = field(default_factory=dict)
    sent: int = 0

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def render(self, template: str, **variables: Any) -> str:
        return render(template, self.config.bot.locale, **variables)

    def reply(self, template: str, **variables: Any) -> None:
        """Answer the person; `*.md.j2` templates go out as markdown, others as text."""
        self.send_to(self.person.userid, template, **variables)

    def send_to(self, userid: str, template: str, **variables: Any) -> None:
        self._enqueue(outbox.message(self.config, userid, template, **variables))

    def reply_card(self, card: dict[str, Any], subject: str, text: str | None = None) -> None:
        """A button card about `subject` (with its text form, when given, for those who read text)."""
        self.send_card_to(self.person.userid, card, subject, text)

    def send_card_to(self, userid: str, card: dict[str, Any], subject: str, text: str | None = None) -> None:
        self.sent += 1
        card_state.send(self.session, self.config, f"{self.reply_key}:{self.sent}", userid, card, subject,
                        self.clock.now(), text=text)

    def finish_cards(self, subject: str, outcome: str) -> None:
        """Someone acted on `subject`: every card about it shows what happened (cards/finished.txt.j2)."""
        label = self.render("cards/finished.txt.j2", outcome=outcome, by=self.person.name)
        clicked = self.update.is_card_click
        card_state.finish(self.session, subject, label, self.person.userid, self.clock.now(),
                          clicked_task_id=self.update.task_id if clicked else "",
                          click_response_code=self.update.response_code if clicked else "")

    def _enqueue(self, message: Outgoing) -> None:
        self.sent += 1
        outbox.enqueue(self.session, f"{self.reply_key}:{self.sent}", message, self.clock.now())
