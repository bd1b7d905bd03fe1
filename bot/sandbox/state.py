"""What survives a sandbox restart besides the database: where sandbox time was, which seed steps ran."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class SandboxState:
    """What survives a restart besides the database: where sandbox time was, which seed steps ran."""

    path: Path
    now: datetime | None = None
    seeded: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> SandboxState:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            now = datetime.fromisoformat(raw["now"]) if raw.get("now") else None
            return cls(path, now if now is None or now.tzinfo else None, list(raw.get("seeded", [])))
        except FileNotFoundError:
            return cls(path)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("ignoring unreadable sandbox state %s", path)
            return cls(path)

    def save(self) -> None:
        data = {"now": self.now.isoformat() if self.now else None, "seeded": self.seeded}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(temporary, self.path)


