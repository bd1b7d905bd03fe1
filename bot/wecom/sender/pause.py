"""The sending pause: every message held while WeCom says the app is misconfigured, probed, lifted, admins told."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from bot.config import Config
from bot.storage.models import OutboxMessage, SendingPause
from bot.storage.sqlutil import insert_ignoring_duplicates
from bot.wecom import outbox
from bot.wecom.sender.delivery import SEND_API
from bot.wecom.sender.statements import UNSENT, unsynchronised

log = logging.getLogger(__name__)


def current_pause(session: Session) -> SendingPause | None:
    """The pause in force, if WeCom said the app is misconfigured and sending has not worked since."""
    return session.get(SendingPause, SEND_API)


def probe_now(session: Session, now: datetime) -> None:
    """An operator who fixed the app restarts the bot and expects it to try at once."""
    session.execute(update(SendingPause).where(SendingPause.next_attempt_at > now).values(next_attempt_at=now))


def take_probe(session: Session, config: Config, pause: SendingPause, now: datetime) -> bool:
    """Become the one process that tries again, and set when the next try would be (growing)."""
    retry = min(pause.retry_seconds * 2, config.sender.pause_retry_max_seconds)
    won = session.execute(unsynchronised(
        update(SendingPause).where(SendingPause.scope == SEND_API,
                                   SendingPause.next_attempt_at == pause.next_attempt_at)
        .values(next_attempt_at=now + timedelta(seconds=retry), retry_seconds=retry)
    )).rowcount
    return won == 1


def start_pause(session: Session, config: Config, reason: str, now: datetime) -> None:
    """Hold every message: WeCom answered `reason`, which only an admin's fix can cure."""
    first_retry = config.sender.pause_retry_seconds
    started = insert_ignoring_duplicates(session, SendingPause.__table__, [{
        "scope": SEND_API, "reason": reason, "since": now,
        "next_attempt_at": now + timedelta(seconds=first_retry), "retry_seconds": first_retry}])
    if started:
        log.error("sending paused: WeCom answered %s; every message stays queued and sending is tried again "
                  "in %d s, then less and less often (see `kpibot outbox`)", reason, first_retry)
    else:  # still paused; keep the reason current (a fixed secret may reveal an untrusted IP next)
        session.execute(update(SendingPause).where(SendingPause.scope == SEND_API).values(reason=reason))


def lift_pause(session: Session, config: Config, pause: SendingPause, now: datetime) -> bool:
    """WeCom answered the probe of `pause`: lift it and tell the admins; False when another process did."""
    lifted = session.execute(delete(SendingPause).where(SendingPause.scope == SEND_API,
                                                        SendingPause.since == pause.since)).rowcount
    if lifted != 1:
        return False
    held = session.scalar(select(func.count()).select_from(OutboxMessage)
                          .where(OutboxMessage.status.in_(UNSENT))) or 0
    zone = config.schedule.zone
    outbox.send_to_admins(session, config, f"sender:resumed:{pause.since.strftime('%Y%m%dT%H%M%S%f')}",
                          "ops/sending_resumed.txt.j2", now, reason=pause.reason, since=pause.since.astimezone(zone),
                          resumed=now.astimezone(zone), held=held)
    log.warning("sending resumed after a pause since %s (%s); %d messages queued", pause.since.isoformat(),
                pause.reason, held)
    return True
