"""How handlers plug in: a Router per handlers/ module, the commands and conversations it declares, and the typed
Context every handler receives."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.appraisal.people import Person, Role
from bot.chat.conversation import ConversationHandle, ConversationSpec
from bot.clock import Clock
from bot.config import Config
from bot.errors import UserFacingError
from bot.templates import render
from bot.wecom import card_state, outbox
from bot.wecom.outbox import Outgoing
from bot.wecom.updates import Update

Handler = Callable[["Context"], None]


@dataclass(frozen=True)
class CommandSpec:
    name: str  # canonical, e.g. "/help"
    aliases: tuple[str, ...]
    handler: Handler
    role: Role


@dataclass
class Router:
    name: str
    commands: list[CommandSpec] = field(default_factory=list)
    events: dict[str, Handler] = field(default_factory=dict)
    cards: dict[str, Handler] = field(default_factory=dict)
    conversations: list[ConversationSpec[Context]] = field(default_factory=list)

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

    def conversation(self, spec: ConversationSpec[Context]) -> ConversationSpec[Context]:
        self.conversations.append(spec)
        return spec


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
    commands: Sequence[CommandSpec] = ()  # every command the bot knows (whoever may use it), for /help
    command: str = ""  # the command being run (its canonical name), when the update is one
    args: str = ""
    sent: int = 0

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def require(self, role: Role, template: str = "not_allowed.txt.j2", **variables: Any) -> None:
        """Go on only for a person of at least `role`; else the one refusal, which the dispatcher answers with
        `template` (by default: who may run this command, and who the person is)."""
        if self.person.role < role:
            raise UserFacingError(template, **{"command": self.command, "required": role.label,
                                               "person": self.person, **variables})

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
