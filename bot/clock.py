"""The injected clock: everything that asks the time asks a Clock, so tests and the sandbox can move it."""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock:
    """A clock that only moves when told to; thread-safe because workers read it concurrently."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now += step
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(timezone.utc)


# Test-only: lets end-to-end tests run `kpibot serve` and `kpibot jobs run` subprocesses on one shared fake time.
TEST_CLOCK_FILE_VARIABLE = "KPIBOT_TEST_CLOCK_FILE"


class FileClock:
    """Test-only: the time written (ISO 8601, with an offset) in a file, read afresh at every call, so a test
    moves the time of several processes at once by rewriting it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def now(self) -> datetime:
        with open(self.path, encoding="utf-8") as handle:
            return datetime.fromisoformat(handle.read().strip()).astimezone(timezone.utc)


def clock_from_environment(environ: Mapping[str, str] | None = None) -> Clock:
    """The system clock, unless a test named a clock file in KPIBOT_TEST_CLOCK_FILE."""
    path = (os.environ if environ is None else environ).get(TEST_CLOCK_FILE_VARIABLE)
    return FileClock(path) if path else SystemClock()
