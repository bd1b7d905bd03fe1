"""The one way a job asks every member who still owes something (a weekly report, a self-review) for it."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.appraisal.leave import userids_on_leave
from bot.appraisal.people import active_members
from bot.appraisal.workcalendar import end_of_day, next_workday
from bot.chat.conversation import open_conversation
from bot.clock import Clock
from bot.config import Config
from bot.storage.models import Conversation, Member
from bot.wecom import outbox

if TYPE_CHECKING:
    from bot.jobs.context import JobContext


@dataclass(frozen=True)
class Waiting:
    """The conversation a prompt opens, so that the member's next message answers it."""

    flow: str
    state: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Ask:
    """What one member who owes it is sent: a template and its variables (the template also gets `opened`),
    and the conversation their answer goes to, if any."""

    template: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    waiting: Waiting | None = None


def waiting_until(at: datetime, config: Config, now: datetime) -> datetime:
    """A prompt waits for its answer until the end of the next workday (at least a conversation's timeout),
    then is quietly closed."""
    return max(end_of_day(next_workday(at.date()), config.schedule.zone),
               now + timedelta(minutes=config.bot.conversation_timeout_minutes))


def open_waiting(session: Session, clock: Clock, userid: str, waiting: Waiting, expires: datetime) -> bool:
    """Let a scheduled prompt open the member's conversation, so their next message answers it (never over one
    they are in the middle of: bot.chat.conversation.open_conversation decides)."""
    current = session.get(Conversation, userid)
    return open_conversation(session, current, userid, waiting.flow, waiting.state, waiting.data, clock.now(), expires,
                             prompted=True) is not None


@dataclass(frozen=True)
class Asked:
    """What a prompt or reminder did, for its job detail."""

    asked: int
    on_leave: int
    already: int


def ask_everyone_owing(job: JobContext, key: str, away: set[str], ask: Callable[[Member], Ask | None]) -> Asked:
    """One message to each active member who owes something for the job's period: `ask` says what (None: they
    owe nothing, e.g. already submitted). Members on leave today or in `away` are skipped, as their leave
    promised. Each message is keyed `job:<key>:<period>:<userid>`, so a job run twice sends it once."""
    session, config, clock = job.session, job.config, job.clock
    now = clock.now()
    expires = waiting_until(job.at, config, now)
    away = away | userids_on_leave(session, job.at.date())
    asked = on_leave = already = 0
    for member in active_members(session):
        if member.userid in away:
            on_leave += 1
            continue
        question = ask(member)
        if question is None:
            already += 1
            continue
        opened = question.waiting is not None and open_waiting(session, clock, member.userid,
                                                               question.waiting, expires)
        outbox.send(session, config, f"job:{key}:{job.period}:{member.userid}", member.userid, question.template, now,
                    opened=opened, **question.variables)
        asked += 1
    return Asked(asked, on_leave, already)
