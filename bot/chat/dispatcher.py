"""Routes one stored update to its handler (commands, conversation states, events, card clicks), closes timed-out
conversations, and answers the one user-facing error."""
from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.people import Person, Role
from bot.chat.conversation import ConversationHandle, ConversationSpec
from bot.chat.routing import CommandSpec, Context, Handler, Router
from bot.clock import Clock
from bot.config import Config
from bot.errors import UserFacingError
from bot.storage.models import Member, TemplateCard
from bot.templates import words
from bot.wecom import card_state
from bot.wecom.updates import Update

log = logging.getLogger(__name__)

_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


@dataclass(frozen=True)
class ParsedCommand:
    name: str
    args: str


def parse_command(text: str) -> ParsedCommand | None:
    """`/score 张三 ...` → ("/score", "张三 ..."); a full-width slash counts too."""
    stripped = text.strip()
    if stripped.startswith("／"):
        stripped = "/" + stripped[1:]
    if not stripped.startswith("/") or len(stripped) == 1:
        return None
    head, *rest = stripped.split(None, 1)
    args = rest[0].strip() if rest else ""
    return ParsedCommand(head.lower(), args)


class Dispatcher:
    """The routers' commands, events, cards and conversations in one table, and the one way an update meets them."""

    def __init__(self, routers: Sequence[Router], config: Config, clock: Clock) -> None:
        self.routers = list(routers)
        self.config = config
        self.clock = clock
        self.commands: dict[str, CommandSpec] = {}
        self.events: dict[str, Handler] = {}
        self.cards: dict[str, Handler] = {}
        self.conversations: dict[str, ConversationSpec[Context]] = {}
        for router in self.routers:
            for spec in router.commands:
                for name in (spec.name, *spec.aliases):
                    self._register(self.commands, name.lower(), spec, router)
            for name, handler in router.events.items():
                self._register(self.events, name, handler, router)
            for prefix, handler in router.cards.items():
                self._register(self.cards, prefix, handler, router)
            for conversation in router.conversations:
                self._register(self.conversations, conversation.name, conversation, router)
        self._command_list = tuple(self.command_specs())

    @staticmethod
    def _register(table: dict[str, Any], key: str, value: Any, router: Router) -> None:
        if key in table:
            raise ValueError(f"{key!r} is registered twice (again by router {router.name!r})")
        table[key] = value

    def command_specs(self) -> list[CommandSpec]:
        """Each command once (under its canonical name), in the order the routers declare them."""
        seen: dict[str, CommandSpec] = {}
        for spec in self.commands.values():
            seen.setdefault(spec.name, spec)
        return list(seen.values())

    # -- the entry points -----------------------------------------------------------------------
    def handle(self, session: Session, update: Update, reply_key: str) -> None:
        """Answer one update in the caller's transaction (the inbox's handle())."""
        self.dispatch(self._context(session, update, reply_key, self._conversation(session, update.from_user)))

    def expire(self, session: Session, userid: str, at: datetime) -> None:
        """Close the member's conversation that timed out, as a timeout does (see _time_out): for the sweep, which
        finds the conversations nobody came back to."""
        conversation = self._conversation(session, userid)
        update = Update(kind="event", from_user=userid, create_time=int(at.timestamp()), event="conversation_timeout")
        # Keyed by the conversation's own deadline, so that a sweep run again sends nothing twice.
        reply_key = f"sweep:{userid}:{conversation.expires_at:%Y%m%dT%H%M%S}"
        self._time_out(self._context(session, update, reply_key, conversation))

    def dispatch(self, ctx: Context) -> None:
        update = ctx.update
        try:
            if ctx.conversation.is_expired(ctx.now):
                self._time_out(ctx)
            if update.kind == "text":
                self._on_text(ctx)
            elif update.is_card_click:
                self._on_card(ctx)
            elif update.kind == "event":
                self._on_event(ctx)
            else:
                ctx.reply("unsupported_message.txt.j2", kind=update.kind)
        except UserFacingError as error:  # the one place a refusal or a domain error becomes the reply
            ctx.reply(error.template, **error.variables)

    def _on_text(self, ctx: Context) -> None:
        command = parse_command(ctx.update.content)
        if command is None:
            spec = self.conversations.get(ctx.conversation.flow or "")
            handler = spec.states.get(ctx.conversation.state or "") if spec else None
            if handler is not None:
                handler(ctx)
            elif not self._answer_by_number(ctx):
                ctx.reply("hint.txt.j2", person=ctx.person)
            return
        if command.name in words("chat.cancel", ctx.config.bot.locale):
            self._cancel(ctx)
            return
        spec = self.commands.get(command.name)
        if spec is None:
            known = [name for name, s in self.commands.items() if ctx.person.role >= s.role]
            ctx.reply("unknown_command.txt.j2", command=command.name,
                      suggestions=difflib.get_close_matches(command.name, known, n=3, cutoff=0.5))
            return
        ctx.command, ctx.args = spec.name, command.args
        ctx.require(spec.role)
        spec.handler(ctx)

    def _cancel(self, ctx: Context) -> None:
        spec = self.conversations.get(ctx.conversation.flow or "")
        if spec is None:
            ctx.reply("cancel_nothing.txt.j2")
            return
        if spec.on_cancel is not None:
            spec.on_cancel(ctx)
        ctx.conversation.end()
        ctx.reply("cancelled.txt.j2")

    def _time_out(self, ctx: Context) -> None:
        """What a timeout does, the one place for it: the flow's on_timeout (which keeps the draft), then the end."""
        spec = self.conversations.get(ctx.conversation.flow or "")
        if spec is not None and spec.on_timeout is not None:
            spec.on_timeout(ctx)
        ctx.conversation.end()

    def _on_event(self, ctx: Context) -> None:
        update = ctx.update
        handler = self.events.get(f"{update.event}:{update.event_key}") or self.events.get(update.event)
        if handler is not None:
            handler(ctx)
        elif update.event == "click" and update.event_key.startswith("/"):
            # A menu item whose key is a command behaves as if the person typed it.
            self._on_text(_with_text(ctx, update.event_key))
        else:
            log.info("ignoring event %s from %s", update.event, update.from_user)

    def _answer_by_number(self, ctx: Context) -> bool:
        """A bare "1", "2"... answers the person's open card (or its text form) as if that button were pressed:
        how people who cannot see cards act on them. Returns whether the text was such an answer."""
        digits = ctx.update.content.strip().translate(_FULL_WIDTH_DIGITS)
        if not digits.isdigit() or len(digits) > 2:
            return False
        waiting = card_state.answerable_by_text(ctx.session, ctx.person.userid, ctx.now)
        if not waiting:
            done = card_state.just_finished(ctx.session, ctx.person.userid, ctx.now)
            if done is not None:  # the same answer again (or someone else was quicker)
                self._already_done(ctx, done)
            return done is not None
        if len({card.subject for card in waiting}) > 1:
            ctx.reply("cards/which_one.txt.j2", count=len({card.subject for card in waiting}))
            return True
        card, number = waiting[0], int(digits)  # the newest copy of the one thing waiting
        if not 1 <= number <= len(card.actions):
            ctx.reply("cards/no_such_choice.txt.j2", number=number, choices=len(card.actions))
            return True
        ctx.update = replace(ctx.update, kind="event", event="template_card_event", event_key=card.actions[number - 1],
                             task_id=card.task_id, response_code="")
        self._on_card(ctx)
        return True

    def _on_card(self, ctx: Context) -> None:
        done = card_state.find(ctx.session, ctx.update.task_id)
        if done is not None and done.status == "finished":
            # Its buttons are already replaced (or the update is on its way): say what happened, send no card.
            self._already_done(ctx, done)
            return
        key = ctx.update.event_key
        for prefix in sorted(self.cards, key=len, reverse=True):
            if key.startswith(prefix):
                self.cards[prefix](ctx)
                return
        ctx.reply("card_expired.txt.j2")

    def _conversation(self, session: Session, userid: str) -> ConversationHandle:
        return ConversationHandle(session, userid, self.clock,
                                  timedelta(minutes=self.config.bot.conversation_timeout_minutes), self.conversations)

    def _context(self, session: Session, update: Update, reply_key: str, conversation: ConversationHandle) -> Context:
        return Context(session=session, update=update, person=load_person(session, update.from_user, self.config),
                       clock=self.clock, config=self.config, conversation=conversation, reply_key=reply_key,
                       commands=self._command_list)

    @staticmethod
    def _already_done(ctx: Context, card: TemplateCard) -> None:
        member = ctx.session.get(Member, card.finished_by or "")
        ctx.reply("cards/already_done.txt.j2", label=card.finished_label or "",
                  at=(card.finished_at or ctx.now).astimezone(ctx.config.schedule.zone),
                  by=member.name if member else card.finished_by)


def _with_text(ctx: Context, text: str) -> Context:
    ctx.update = replace(ctx.update, content=text, kind="text")
    return ctx


def load_person(session: Session, userid: str, config: Config) -> Person:
    member = session.get(Member, userid)
    if member is None or not member.active:
        role = Role.ADMIN if userid in config.org.admins else Role.GUEST
        return Person(userid=userid, name=member.name if member else userid, role=role)
    if member.is_admin or userid in config.org.admins:
        role = Role.ADMIN
    else:
        leads = session.scalar(select(Member.userid).where(Member.manager_userid == userid,
                                                           Member.active.is_(True)).limit(1))
        role = Role.MANAGER if leads else Role.MEMBER
    return Person(userid=member.userid, name=member.name, role=role, manager_userid=member.manager_userid,
                  department_ids=tuple(member.department_ids or ()))
