"""What WeCom told us: decrypted callback XML parsed into one typed Update, and its dedupe key."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import xmltodict

# xmltodict turns a single <SelectedItem> into a dict and several into a list; always take lists.
_LIST_TAGS = ("SelectedItem", "OptionId")


class MalformedUpdate(ValueError):
    """The decrypted body is not a WeCom message we can read."""


@dataclass(frozen=True)
class SelectedItem:
    question_key: str
    option_ids: tuple[str, ...]


@dataclass(frozen=True)
class Update:
    kind: str  # text | event | image | voice | ... (WeCom's MsgType)
    from_user: str
    create_time: int
    msg_id: str | None = None
    content: str = ""
    event: str = ""
    event_key: str = ""
    task_id: str = ""
    card_type: str = ""
    response_code: str = ""
    selected: tuple[SelectedItem, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_card_click(self) -> bool:
        return self.kind == "event" and self.event in ("template_card_event", "template_card_menu_event")

    def dedupe_key(self) -> str:
        """WeCom's own rule: messages by MsgId, events by sender + time, plus what tells two card clicks apart."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        material = "|".join((self.from_user, str(self.create_time), self.event, self.event_key, self.task_id))
        return "evt:" + hashlib.sha256(material.encode("utf-8")).hexdigest()

    def to_payload(self) -> dict[str, Any]:
        return dict(self.raw)


# WeCom's messages carry no DTD; refusing one keeps entity tricks away from the parser (as bot.wecom.crypto does).
_DOCTYPE_OR_ENTITY = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_update(xml: bytes | str) -> Update:
    text = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else xml
    if _DOCTYPE_OR_ENTITY.search(text):
        raise MalformedUpdate("message carries a DTD")
    try:
        document = xmltodict.parse(xml, force_list=_LIST_TAGS)
    except Exception as error:  # noqa: BLE001 - expat raises several unrelated types
        raise MalformedUpdate(f"not XML: {error}") from None
    root = document.get("xml") if isinstance(document, dict) else None
    if not isinstance(root, dict):
        raise MalformedUpdate("no <xml> root")
    return update_from_fields(root)


def update_from_fields(root: dict[str, Any]) -> Update:
    """Build an Update from the message's fields (as parsed now, or as stored in the inbox)."""

    def text(name: str) -> str:
        value = root.get(name)
        return "" if value is None else str(value).strip() if name != "Content" else str(value)

    kind = text("MsgType").lower()
    from_user = text("FromUserName")
    if not kind or not from_user:
        raise MalformedUpdate("MsgType or FromUserName missing")
    try:
        create_time = int(text("CreateTime") or 0)
    except ValueError:
        raise MalformedUpdate("CreateTime is not a number") from None
    selected: list[SelectedItem] = []
    items = root.get("SelectedItems") or {}
    if isinstance(items, dict):
        for item in items.get("SelectedItem") or []:
            if not isinstance(item, dict):
                continue
            options = (item.get("OptionIds") or {}).get("OptionId") or [] if isinstance(item.get("OptionIds"), dict) else []
            selected.append(SelectedItem(str(item.get("QuestionKey", "")), tuple(str(o) for o in options)))
    event = text("Event")
    return Update(
        kind=kind,
        from_user=from_user,
        create_time=create_time,
        msg_id=text("MsgId") or None,
        content=text("Content"),
        event=event,
        event_key=text("EventKey"),
        task_id=text("TaskId"),
        card_type=text("CardType"),
        response_code=text("ResponseCode"),
        selected=tuple(selected),
        raw={key: value for key, value in root.items()},
    )
