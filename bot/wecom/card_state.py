"""Cards people act on: which are live, sending one (with its text form), finishing every copy once someone
acted, and the update_template_card outbox rows that show what happened on each."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.wecom import outbox, plain_text
from bot.config import Config
from bot.storage.models import OutboxMessage, TemplateCard
from bot.wecom.outbox import Outgoing

# The outbox msgtype of a card update: the sender delivers it through message/update_template_card.
CARD_UPDATE = "card_update"
# A response_code works once, within 72 hours (WeCom doc 94888, updated 2025-07).
RESPONSE_CODE_VALIDITY = timedelta(hours=72)
# How long a bare "1"/"2" reply may still answer a card or its text form.
TEXT_REPLY_WINDOW = timedelta(days=7)
# How long a repeated numbered answer is still taken to mean the card just finished.
JUST_FINISHED = timedelta(hours=1)
LABEL_CHARS = 32


def send(session: Session, config: Config, key: str, touser: str, card: dict[str, Any], subject: str,
         now: datetime, *, text: str | None = None) -> None:
    """Queue a button card for one person, with its text form for those who read text, and remember it until
    it is finished. `subject` names what the card is about, so every copy can be finished together."""
    if text is not None and (plain_text.gets_text_form(config, touser) or not plain_text.gets_cards(config, touser)):
        outbox.enqueue(session, f"{key}:text", Outgoing.text(touser, text), now)
    card_key: str | None = None
    if plain_text.gets_cards(config, touser):
        card_key = f"{key}:card"
        outbox.enqueue(session, card_key, Outgoing.card(touser, card), now)
    session.add(TemplateCard(task_id=card["task_id"], subject=subject, touser=touser, outbox_key=card_key,
                             actions=[button["key"] for button in card.get("button_list", [])], status="open",
                             created_at=now))


def find(session: Session, task_id: str) -> TemplateCard | None:
    return session.get(TemplateCard, task_id) if task_id else None


def answerable_by_text(session: Session, userid: str, now: datetime) -> list[TemplateCard]:
    """The person's open cards (or text forms) that a bare number may still answer, newest first."""
    return list(session.scalars(select(TemplateCard).where(
        TemplateCard.touser == userid, TemplateCard.status == "open",
        TemplateCard.created_at >= now - TEXT_REPLY_WINDOW).order_by(TemplateCard.created_at.desc())))


def just_finished(session: Session, userid: str, now: datetime) -> TemplateCard | None:
    """The person's card finished in the last hour, if any: what a repeated numbered answer refers to."""
    return session.scalars(select(TemplateCard).where(
        TemplateCard.touser == userid, TemplateCard.status == "finished",
        TemplateCard.finished_at >= now - JUST_FINISHED).order_by(TemplateCard.finished_at.desc()).limit(1)).first()


def finish(session: Session, subject: str, label: str, by: str, now: datetime, *,
           clicked_task_id: str = "", click_response_code: str = "") -> int:
    """Every open card about `subject` is finished: its buttons are replaced by `label` (「已批准 · 李娜」).

    The clicked card uses the click's ResponseCode; every other copy uses the response_code its own send
    returned (looked up when the update is sent, as that send may still be queued). Returns how many."""
    label = label.strip()[:LABEL_CHARS]
    rows = list(session.scalars(select(TemplateCard).where(TemplateCard.subject == subject,
                                                           TemplateCard.status == "open")))
    for row in rows:
        row.status, row.finished_label, row.finished_by, row.finished_at = "finished", label, by, now
        if row.outbox_key is None:
            continue  # only the text form went out: there is no card to update
        code = click_response_code if row.task_id == clicked_task_id else ""
        outbox.enqueue(session, f"card-update:{row.task_id}",
                       Outgoing(row.touser, CARD_UPDATE, {"task_id": row.task_id, "replace_name": label,
                                                          "response_code": code}), now)
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class SentCard:
    """What the send of a card left behind for updating it later."""

    status: str  # the card's outbox status: pending | sending | sent | failed; "" when unknown
    response_code: str | None
    sent_at: datetime | None


def sent_card(session: Session, task_id: str) -> SentCard:
    row = session.execute(
        select(OutboxMessage.status, OutboxMessage.response_code, OutboxMessage.sent_at)
        .join(TemplateCard, TemplateCard.outbox_key == OutboxMessage.idempotency_key)
        .where(TemplateCard.task_id == task_id)).first()
    if row is None:
        return SentCard("", None, None)
    return SentCard(row.status, row.response_code, row.sent_at)
