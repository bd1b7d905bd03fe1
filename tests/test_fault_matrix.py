"""The fault matrix: each WeCom error the send path can meet ends delivered exactly once, or held with its reason.

The fake WeCom answers message/send with the injected fault; a sender of our own is driven pass by
pass on the fake clock (no sleeping), bounded in passes."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.storage.db import transaction
from bot.storage.models import OutboxMessage
from bot.wecom.outbox import Outgoing, enqueue
from bot.wecom.sender import Sender
from bot.wecom.client import WeComClient
from tests.harness import BotEnv

USER = "zhaolei"
MAX_PASSES = 40
REQUEST_TIMEOUT = 1.0  # the matrix's own client gives up after this; the timeout fault answers later


@dataclass(frozen=True)
class Fault:
    name: str
    inject: dict[str, Any]
    expect: str  # "delivered": exactly once; "failed": not delivered, failed with the code as reason;
    #              "held": not delivered, not failed, reason recorded, delivered once when the fault clears
    reason: str = ""


FAULTS = [
    Fault("-1 system busy, once", {"errcode": -1}, "delivered"),
    Fault("-1 system busy, for good", {"errcode": -1, "times": 1000}, "failed", "-1"),
    Fault("40014 invalid token", {"errcode": 40014}, "delivered"),
    Fault("42001 token expired", {"errcode": 42001}, "delivered"),
    Fault("45009 frequency limit", {"errcode": 45009, "times": 2}, "delivered"),
    Fault("45033 concurrency limit", {"errcode": 45033, "times": 2}, "delivered"),
    Fault("81013 all recipients invalid", {"errcode": 81013}, "failed", "81013"),
    # Configuration errors pause sending instead of failing every message (wecom.md §9, second part).
    Fault("60020 IP not trusted", {"errcode": 60020, "times": 1000}, "held", "60020"),
    Fault("40001 wrong secret", {"errcode": 40001, "times": 1000}, "held", "40001"),
    # A missing token is our bug, not WeCom's: fetch one and send again, once.
    Fault("41001 token missing", {"errcode": 41001}, "delivered"),
    Fault("HTTP 500", {"http_status": 500}, "delivered"),
    Fault("HTTP 502 twice", {"http_status": 502, "times": 2}, "delivered"),
    Fault("HTTP 503", {"http_status": 503}, "delivered"),
    # The client gives up but WeCom did deliver: the resend must not be shown twice.
    Fault("timeout after delivery", {"delay": REQUEST_TIMEOUT + 0.5}, "delivered"),
]


def row_of(env: BotEnv) -> OutboxMessage:
    with transaction(env.bot.sessions) as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.touser == USER)).one()
        session.expunge(row)
        return row


def drive(env: BotEnv, sender: Sender, until: set[str], passes: int = MAX_PASSES) -> int:
    """Sender passes, a minute apart on the fake clock (every backoff here is shorter), until the row's status
    is in `until`; returns the passes used."""
    for used in range(1, passes + 1):
        sender.send_due()
        if row_of(env).status in until:
            return used
        env.clock.advance(timedelta(minutes=1))
    return passes


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_every_wecom_fault_ends_delivered_once_or_held_with_its_reason(bot_env: BotEnv, fault: Fault) -> None:
    bot_env.bot.sender.stop()  # only our own sender below sends, one pass at a time
    config = replace(bot_env.config, wecom=replace(bot_env.config.wecom, request_timeout=REQUEST_TIMEOUT))
    client = WeComClient(config.wecom, bot_env.bot.sessions, bot_env.clock)
    sender = Sender(config, bot_env.bot.sessions, client, bot_env.clock)
    with transaction(bot_env.bot.sessions) as session:
        enqueue(session, "fault-matrix", Outgoing.text(USER, f"考核提醒（{fault.name}）"), bot_env.clock.now())
    bot_env.fake.inject("message/send", **fault.inject)

    passes = drive(bot_env, sender, {"sent", "failed"}, passes=12 if fault.expect == "held" else MAX_PASSES)
    row = row_of(bot_env)
    delivered = len(bot_env.fake.delivered(USER))
    print(f"\nfault {fault.name}: {row.status} after {row.attempts} attempts in {passes} passes, "
          f"delivered {delivered}, reason {row.last_error!r}")
    if fault.expect == "delivered":
        assert (row.status, delivered) == ("sent", 1)
        bot_env.clock.advance(timedelta(hours=1))
        assert sender.send_due() == 0 and len(bot_env.fake.delivered(USER)) == 1  # nothing left, nothing twice
    elif fault.expect == "failed":
        assert (row.status, delivered) == ("failed", 0)
        assert fault.reason in (row.last_error or "")
        assert row.attempts <= bot_env.config.sender.max_attempts  # bounded: no hammering
    else:
        assert row.status == "pending" and delivered == 0 and fault.reason in (row.last_error or "")
        bot_env.fake.clear_injections()
        drive(bot_env, sender, {"sent"})
        assert (row_of(bot_env).status, len(bot_env.fake.delivered(USER))) == ("sent", 1)
