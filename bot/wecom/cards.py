"""Template-card payloads for message/send: builders that keep to WeCom's field rules (wecom.md §2)."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

_NOT_TASK_ID = re.compile(r"[^0-9A-Za-z_\-@]")
TASK_ID_BYTES = 128
BUTTON_KEY_BYTES = 1024
MAX_BUTTONS = 6
# WeCom shows these fields cut short on phones; keeping under its advised lengths keeps them whole.
TITLE_CHARS, DESC_CHARS, SUB_TITLE_CHARS, BUTTON_CHARS = 26, 30, 160, 10


class ButtonStyle:
    PRIMARY = 1
    SECONDARY = 2


@dataclass(frozen=True)
class CardButton:
    text: str
    key: str
    style: int = ButtonStyle.PRIMARY


def new_task_id(prefix: str) -> str:
    """A task_id that is new on every call: WeCom refuses one it has seen (42014), even for the same report."""
    head = _NOT_TASK_ID.sub("_", prefix)[:TASK_ID_BYTES - 33]
    return f"{head}_{uuid.uuid4().hex}"


def clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def button_card(*, task_id: str, title: str, description: str, body: str, buttons: list[CardButton],
                source: str = "") -> dict[str, Any]:
    """A button_interaction card; clicks come back as template_card_event with the button's key."""
    if not 1 <= len(buttons) <= MAX_BUTTONS:
        raise ValueError(f"a card takes 1..{MAX_BUTTONS} buttons, got {len(buttons)}")
    if len(task_id.encode()) > TASK_ID_BYTES or _NOT_TASK_ID.search(task_id):
        raise ValueError(f"invalid task_id {task_id!r}")
    for button in buttons:
        if len(button.key.encode()) > BUTTON_KEY_BYTES:
            raise ValueError(f"button key longer than {BUTTON_KEY_BYTES} bytes: {button.key[:40]}…")
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": clip(title, TITLE_CHARS), "desc": clip(description, DESC_CHARS)},
        "sub_title_text": clip(body, SUB_TITLE_CHARS),
        "task_id": task_id,
        "button_list": [{"type": 0, "text": clip(b.text, BUTTON_CHARS), "style": b.style, "key": b.key}
                        for b in buttons],
    }
    if source:
        card["source"] = {"desc": clip(source, 13)}
    return card
