"""Every person's conversation with the bot in the sandbox: what they typed, what arrived, what became of each card."""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.fakes.wecom import DeliveredMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranscriptEntry:
    """One message in a person's conversation with the bot: typed by them (to_bot) or delivered (from_bot)."""

    seq: int
    userid: str
    direction: str  # to_bot | from_bot
    msgtype: str
    payload: dict[str, Any]
    at: datetime
    task_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "userid": self.userid, "direction": self.direction, "msgtype": self.msgtype,
                "payload": self.payload, "task_id": self.task_id, "at": self.at.isoformat(),
                "at_ms": int(self.at.timestamp() * 1000)}


@dataclass
class CardState:
    """What became of a card after it was delivered: clicked, its button renamed, or replaced."""

    seq: int
    clicked_key: str | None = None
    replace_name: str | None = None
    card: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "clicked_key": self.clicked_key, "replace_name": self.replace_name,
                "card": self.card}


class Transcript:
    """Every person's conversation with the bot, kept server-side (and in the data dir) so a reload shows it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._condition = threading.Condition()
        self._entries: list[TranscriptEntry] = []
        self._cards: dict[tuple[str, str], CardState] = {}
        self._seq = 0
        self._closing = False
        if path is not None and path.exists():
            self._load(path)

    @property
    def seq(self) -> int:
        with self._condition:
            return self._seq

    def _load(self, path: Path) -> None:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                if record["type"] == "message":
                    entry = TranscriptEntry(record["seq"], record["userid"], record["direction"], record["msgtype"],
                                            record["payload"], datetime.fromisoformat(record["at"]),
                                            record.get("task_id"))
                    self._entries.append(entry)
                    self._seq = max(self._seq, entry.seq)
                elif record["type"] == "card":
                    state = CardState(record["seq"], record.get("clicked_key"), record.get("replace_name"),
                                      record.get("card"))
                    self._cards[(record["userid"], record["task_id"])] = state
                    self._seq = max(self._seq, state.seq)
            except (KeyError, TypeError, ValueError):
                log.warning("skipping an unreadable line of %s", path)

    def _append_record(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def add(self, userid: str, direction: str, msgtype: str, payload: dict[str, Any], at: datetime,
            task_id: str | None = None) -> TranscriptEntry:
        with self._condition:
            self._seq += 1
            entry = TranscriptEntry(self._seq, userid, direction, msgtype, payload, at, task_id)
            self._entries.append(entry)
            self._append_record({"type": "message", **entry.to_json()})
            self._condition.notify_all()
            return entry

    def add_delivery(self, message: DeliveredMessage) -> None:
        self.add(message.touser, "from_bot", message.msgtype, message.payload, message.at, message.task_id)

    def card(self, userid: str, task_id: str) -> TranscriptEntry | None:
        with self._condition:
            for entry in reversed(self._entries):
                if entry.userid == userid and entry.task_id == task_id and entry.msgtype == "template_card":
                    return entry
            return None

    def card_state(self, userid: str, task_id: str) -> CardState | None:
        with self._condition:
            return self._cards.get((userid, task_id))

    def holders(self, task_id: str) -> list[str]:
        with self._condition:
            return sorted({e.userid for e in self._entries if e.task_id == task_id})

    def update_card(self, userid: str, task_id: str, **changes: Any) -> CardState:
        with self._condition:
            self._seq += 1
            current = self._cards.get((userid, task_id)) or CardState(self._seq)
            state = replace(current, seq=self._seq, **changes)
            self._cards[(userid, task_id)] = state
            self._append_record({"type": "card", "userid": userid, "task_id": task_id, **state.to_json()})
            self._condition.notify_all()
            return state

    def touch(self) -> None:
        """Wake waiting readers without a new message (time moved, for instance)."""
        with self._condition:
            self._seq += 1
            self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self._closing = True
            self._condition.notify_all()

    def changes_since(self, after: int, userid: str | None = None,
                      wait: float = 0.0) -> tuple[int, list[TranscriptEntry], dict[str, dict[str, CardState]]]:
        """(cursor, entries, card states) newer than `after`, waiting up to `wait` seconds for something new."""
        with self._condition:
            if wait > 0:
                self._condition.wait_for(lambda: self._seq > after or self._closing, timeout=wait)
            entries = [e for e in self._entries if e.seq > after and (userid is None or e.userid == userid)]
            cards: dict[str, dict[str, CardState]] = {}
            for (owner, task_id), state in self._cards.items():
                if state.seq > after and (userid is None or owner == userid):
                    cards.setdefault(owner, {})[task_id] = state
            return self._seq, entries, cards

    def has_conversation(self, userid: str) -> bool:
        with self._condition:
            return any(e.userid == userid for e in self._entries)


