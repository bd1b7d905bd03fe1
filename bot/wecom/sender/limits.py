"""WeCom's sending limits as the sender keeps them: per member, company-wide, the day's volume and its warning."""
from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from bot.config import Config, SenderConfig
from bot.storage.models import ApiCallCount, OutboxMessage
from bot.storage.sqlutil import insert_ignoring_duplicates
from bot.wecom import outbox
from bot.wecom.client import WECOM_ZONE
from bot.wecom.sender.delivery import SEND_API
from bot.wecom.sender.statements import count_when, unsynchronised

log = logging.getLogger(__name__)

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
DAY_COUNTER = "message/send:day"  # person-times per WeCom day, for the app's daily volume
BUCKET = timedelta(seconds=10)
CLOCK_SKEW = timedelta(minutes=1)  # how far ahead another process's clock may be and still count


def member_budgets(session: Session, limits: SenderConfig, users: list[str], now: datetime) -> dict[str, int]:
    """How many more messages each member may get now: the per-member limits (with their margin)
    less what they got in the last minute and hour and what any process is sending them."""
    in_last_minute = func.sum(count_when(OutboxMessage.sent_at >= now - MINUTE))
    # A send stamped well in the future comes from a process whose clock is wrong: it must not hold a
    # member back for as long as that clock is ahead.
    sent = {user: (int(minute or 0), int(hour)) for user, minute, hour in session.execute(
        select(OutboxMessage.touser, in_last_minute, func.count())
        .where(OutboxMessage.touser.in_(users), OutboxMessage.sent_at >= now - HOUR,
               OutboxMessage.sent_at <= now + CLOCK_SKEW)
        .group_by(OutboxMessage.touser))}
    in_flight = {user: int(count) for user, count in session.execute(
        select(OutboxMessage.touser, func.count())
        .where(OutboxMessage.status == "sending", OutboxMessage.touser.in_(users),
               OutboxMessage.claimed_until > now)
        .group_by(OutboxMessage.touser))}
    budgets = {}
    for user in users:
        minute, hour = sent.get(user, (0, 0))
        busy = in_flight.get(user, 0)
        budgets[user] = min(limits.per_member_per_minute - minute, limits.per_member_per_hour - hour) - busy
    return budgets


def company_room(session: Session, limits: SenderConfig, now: datetime) -> int:
    """Calls to message/send the whole company may still make now, and the day's volume left."""
    in_last_minute = func.sum(count_when(ApiCallCount.bucket_start > now - MINUTE - BUCKET, ApiCallCount.calls))
    minute, hour = session.execute(
        select(in_last_minute, func.sum(ApiCallCount.calls))
        .where(ApiCallCount.api == SEND_API, ApiCallCount.bucket_start > now - HOUR - BUCKET,
               ApiCallCount.bucket_start <= now + CLOCK_SKEW)).one()
    today = session.scalar(select(ApiCallCount.calls).where(ApiCallCount.api == DAY_COUNTER,
                                                           ApiCallCount.bucket_start == _wecom_day(now)))
    return min(limits.company_calls_per_minute - int(minute or 0), limits.company_calls_per_hour - int(hour or 0),
               daily_volume(limits) - int(today or 0))


def daily_volume(limits: SenderConfig) -> int:
    """The person-times a day WeCom lets the app send: 200 per licensed account."""
    return limits.account_limit * 200


def count_calls(session: Session, config: Config, calls: int, now: datetime) -> None:
    """Count `calls` sends made now (in the current 10 s bucket and WeCom day); warn the admins once a day
    when the day's sends cross the configured share of its volume."""
    bucket = _bucket(now)
    day = _wecom_day(now)
    fresh = insert_ignoring_duplicates(session, ApiCallCount.__table__, [
        {"api": SEND_API, "bucket_start": bucket, "calls": 0}, {"api": DAY_COUNTER, "bucket_start": day, "calls": 0}])
    for api, start in ((SEND_API, bucket), (DAY_COUNTER, day)):
        session.execute(unsynchronised(update(ApiCallCount)
                                       .where(ApiCallCount.api == api, ApiCallCount.bucket_start == start)
                                       .values(calls=ApiCallCount.calls + calls)))
    if fresh:  # a new bucket began: forget the ones no ceiling looks at any more
        session.execute(delete(ApiCallCount).where(ApiCallCount.api == SEND_API,
                                                   ApiCallCount.bucket_start < now - 2 * HOUR))
        session.execute(delete(ApiCallCount).where(ApiCallCount.api == DAY_COUNTER,
                                                   ApiCallCount.bucket_start < day - timedelta(days=7)))
    today = session.scalar(select(ApiCallCount.calls).where(ApiCallCount.api == DAY_COUNTER,
                                                           ApiCallCount.bucket_start == day)) or 0
    threshold = daily_volume(config.sender) * config.sender.daily_warning_percent // 100
    if today - calls < threshold <= today:
        _warn_daily_volume(session, config, today, now)


def _warn_daily_volume(session: Session, config: Config, today: int, now: datetime) -> None:
    day = now.astimezone(WECOM_ZONE).date()
    volume, account_limit = daily_volume(config.sender), config.sender.account_limit
    queued = outbox.send_to_admins(session, config, f"sender:daily-volume:{day.isoformat()}",
                                   "ops/daily_volume_warning.txt.j2", now, sent=today, volume=volume,
                                   account_limit=account_limit, day=day)
    if queued:
        log.warning("message/send today: %d of the app's %d person-times a day (account limit %d x 200)",
                    today, volume, account_limit)


def _bucket(now: datetime) -> datetime:
    return now.replace(second=now.second - now.second % 10, microsecond=0)


def _wecom_day(now: datetime) -> datetime:
    local = now.astimezone(WECOM_ZONE)
    return datetime.combine(local.date(), time(0), WECOM_ZONE)
