"""Conversations: how one is declared (ConversationSpec), the one way to open one, and the handle that moves it."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from bot.clock import Clock
from bot.storage.models import Conversation
from bot.storage.sqlutil import insert_ignoring_duplicates

# The context a conversation's steps receive (bot.chat.routing.Context): a parameter, so that this module,
# which routing builds on, needs nothing of it.
ContextT = TypeVar("ContextT")

# The data key of a conversation a scheduled prompt opened and the member has not answered yet: the next prompt may
# replace it, while one the member is in the middle of is left alone.
UNTOUCHED = "untouched"


@dataclass(frozen=True)
class ConversationSpec(Generic[ContextT]):
    """A conversation declared in one place: the state it opens in, what each state does with a message,
    what happens on /cancel and on timeout, and how long it may stay idle (the dispatcher honours it)."""

    name: str
    states: Mapping[str, Callable[[ContextT], None]]
    on_cancel: Callable[[ContextT], None] | None = None
    on_timeout: Callable[[ContextT], None] | None = None
    timeout: timedelta | None = None  # None: the configured default
    entry: str = ""  # the state it opens in; left out: the first of `states`

    def __post_init__(self) -> None:
        if not self.entry:
            object.__setattr__(self, "entry", next(iter(self.states)))
        if self.entry not in self.states:
            raise ValueError(f"conversation {self.name!r} opens in {self.entry!r}, which is none of its states")


def open_conversation(session: Session, current: Conversation | None, userid: str, flow: str, state: str,
                      data: Mapping[str, Any], now: datetime, expires: datetime, *,
                      prompted: bool = False) -> Conversation | None:
    """Open the member's conversation in `flow` at `state`, replacing `current` (their row, if any): the one way a
    conversation begins, whether a handler or a scheduled prompt opens it.

    `prompted`: a prompt opens it so that the member's next message answers it. It never replaces a conversation
    the member is in the middle of (None then); an expired one, or a prompt never answered, may be replaced (what
    they entered lives in its own table, not in the conversation)."""
    if prompted and current is not None and current.expires_at > now and not (current.data or {}).get(UNTOUCHED):
        return None
    payload = {**data, UNTOUCHED: True} if prompted else dict(data)
    if current is None:
        row = {"userid": userid, "flow": flow, "state": str(state), "data": payload, "updated_at": now,
               "expires_at": expires}
        # Two jobs (the weekly and the monthly prompt, taken over together) may open the same member's conversation
        # at once: the unique key decides, and the loser applies the rules above to the winner's row.
        inserted = insert_ignoring_duplicates(session, Conversation.__table__, [row])
        # A locking read sees the committed row even under MariaDB's repeatable read.
        opened = session.scalars(select(Conversation).where(Conversation.userid == userid).with_for_update()
                                 .execution_options(populate_existing=True)).one()
        if inserted:
            return opened
        return open_conversation(session, opened, userid, flow, state, data, now, expires, prompted=prompted)
    else:
        current.flow, current.state, current.data = flow, state, payload
        current.updated_at, current.expires_at = now, expires
        flag_modified(current, "data")
    return current


class ConversationHandle:
    """The member's open conversation, read and written in the handler's own transaction."""

    def __init__(self, session: Session, userid: str, clock: Clock, default_timeout: timedelta,
                 declared: Mapping[str, ConversationSpec[Any]] | None = None) -> None:
        self._session = session
        self._userid = userid
        self._clock = clock
        self._default_timeout = default_timeout
        self._declared = declared or {}
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

    @property
    def expires_at(self) -> datetime | None:
        return self._row.expires_at if self._row else None

    def is_expired(self, now: datetime) -> bool:
        return self._row is not None and self._row.expires_at <= now

    def open(self, spec: ConversationSpec[Any], data: Mapping[str, Any] | None = None, *,
             state: str | None = None) -> None:
        """Open `spec` at its entry (or `state`), for as long as it declares."""
        self.start(spec.name, state or spec.entry, dict(data or {}), spec.timeout)

    def start(self, flow: str, state: str, data: dict[str, Any] | None = None,
              timeout: timedelta | None = None) -> None:
        """Open `flow` at `state` by its name (what open() does with a declaration in hand)."""
        now = self._clock.now()
        self._row = open_conversation(self._session, self._row, self._userid, flow, state, data or {}, now,
                                      now + (timeout or self._timeout_of(flow)))

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
        self._row.expires_at = now + (timeout or self._timeout_of(self._row.flow))

    def end(self) -> None:
        if self._row is not None:
            self._session.delete(self._row)
            self._row = None

    def _timeout_of(self, flow: str) -> timedelta:
        """How long a conversation of `flow` may stay idle: as its declaration says, else the configured default."""
        spec = self._declared.get(flow)
        return spec.timeout if spec is not None and spec.timeout is not None else self._default_timeout
