"""The outbox: every message out, rendered as markdown or text by its template, queued in the caller's transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import pausepoints
from bot.config import Config
from bot.storage.models import OutboxMessage
from bot.storage.sqlutil import insert_ignoring_duplicates
from bot.templates import is_markdown_template, render
from bot.wecom import plain_text

# WeCom's limit for text and markdown content, in UTF-8 bytes (wecom.md §2).
CONTENT_LIMIT_BYTES = 2048


@dataclass(frozen=True)
class Outgoing:
    """A message for one person: WeCom's msgtype and the body WeCom expects under that key."""

    touser: str
    msgtype: str
    body: dict[str, Any]

    @classmethod
    def text(cls, touser: str, content: str) -> Outgoing:
        return cls(touser, "text", {"content": content})

    @classmethod
    def markdown(cls, touser: str, content: str) -> Outgoing:
        return cls(touser, "markdown", {"content": content})

    @classmethod
    def card(cls, touser: str, card: dict[str, Any]) -> Outgoing:
        return cls(touser, "template_card", card)


def message(config: Config, userid: str, template: str, /, **variables: Any) -> Outgoing:
    """`template` rendered for one person: `*.md.j2` as markdown (its plain-text form for those who read text,
    see plain_text), every other template as text.

    Positional-only, so a template may have variables called `config`, `userid` or `template` too."""
    content = render(template, config.bot.locale, **variables)
    if not is_markdown_template(template):
        return Outgoing.text(userid, content)
    if plain_text.gets_text_form(config, userid):
        return Outgoing.text(userid, plain_text.markdown_as_text(content))
    return Outgoing.markdown(userid, content)


def send(session: Session, config: Config, key: str, userid: str, template: str, now: datetime, /,
         **variables: Any) -> int:
    """Queue `template` for one person under an idempotency key (see `message` and `enqueue`)."""
    return enqueue(session, key, message(config, userid, template, **variables), now)


def send_to_admins(session: Session, config: Config, key: str, template: str, now: datetime, /,
                   **variables: Any) -> int:
    """Queue `template` for every configured admin, each under `key:<admin>`; returns how many rows were new."""
    return sum(send(session, config, f"{key}:{admin}", admin, template, now, **variables)
               for admin in config.org.admins)


def split_utf8(content: str, limit: int = CONTENT_LIMIT_BYTES) -> list[str]:
    """Split text into pieces of at most `limit` UTF-8 bytes, preferring line breaks, never splitting a character."""
    if len(content.encode("utf-8")) <= limit:
        return [content]
    pieces: list[str] = []
    current = ""
    current_size = 0
    for line in content.splitlines(keepends=True):
        size = len(line.encode("utf-8"))
        if current_size + size <= limit:
            current += line
            current_size += size
            continue
        if current:
            pieces.append(current)
            current, current_size = "", 0
        while size > limit:  # one line longer than the limit: cut it at character boundaries
            head, cut = "", 0
            for char in line:
                char_size = len(char.encode("utf-8"))
                if cut + char_size > limit:
                    break
                head += char
                cut += char_size
            pieces.append(head)
            line = line[len(head):]
            size = len(line.encode("utf-8"))
        current, current_size = line, size
    if current:
        pieces.append(current)
    return [piece.strip("\n") or piece for piece in pieces]


def enqueue(session: Session, key: str, message: Outgoing, now: datetime) -> int:
    """Queue a message under an idempotency key; queueing the same key again does nothing.

    Long text and markdown become several rows (`key#2`, `key#3`...) sent in order.
    Returns the number of rows newly queued.
    """
    if message.msgtype in ("text", "markdown"):
        parts = split_utf8(message.body["content"])
        bodies = [{**message.body, "content": part} for part in parts]
    else:
        bodies = [message.body]
    rows = [
        {
            "idempotency_key": key if index == 0 else f"{key}#{index + 1}",
            "touser": message.touser,
            "msgtype": message.msgtype,
            "payload": body,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for index, body in enumerate(bodies)
    ]
    queued = insert_ignoring_duplicates(session, OutboxMessage.__table__, rows)
    pausepoints.reached(f"outbox.enqueue:{key}")
    return queued
