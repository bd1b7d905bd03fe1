"""The sandbox as a test talks to it (a pytest plugin like tests.harness): its JSON API over real HTTP, the
typed-and-answered verb `ask`, and a job table of the org sync alone for tests that move the sandbox's time."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from bot.jobs import table as schedule
from bot.sandbox.running import Sandbox

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 27, 9, 0, tzinfo=SHANGHAI)  # a Friday morning


@pytest.fixture
def org_sync_only(monkeypatch: pytest.MonkeyPatch) -> list[schedule.JobSpec]:
    """A job table of the nightly org sync alone, so these tests do not depend on the flows' own jobs."""
    table = [schedule.job_by_id("org_sync")]
    monkeypatch.setattr(schedule, "JOBS", table)
    monkeypatch.setattr(schedule, "HOUSEKEEPING", [])
    return table


class Api:
    def __init__(self, sandbox: Sandbox) -> None:
        self.base = sandbox.url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False  # a proxy from the environment must not see loopback calls

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.base + path, params=params, timeout=30)

    def post(self, path: str, body: Any = None, timeout: float = 60) -> requests.Response:
        return self.http.post(self.base + path, json=body, timeout=timeout)

    def conversation(self, userid: str) -> list[dict[str, Any]]:
        return self.get("/sandbox/api/messages", userid=userid).json()["entries"]

    def wait_for(self, userid: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """Long-poll the messages API until an entry for userid matches."""
        deadline = time.monotonic() + timeout
        cursor = 0
        while time.monotonic() < deadline:
            answer = self.get("/sandbox/api/messages", userid=userid, after=cursor, wait=min(2.0, timeout)).json()
            for entry in answer["entries"]:
                if predicate(entry):
                    return entry
            cursor = answer["cursor"]
        raise AssertionError(f"no matching message for {userid} within {timeout}s; have {self.conversation(userid)}")


def bot_text(needle: str) -> Callable[[dict[str, Any]], bool]:
    def predicate(entry: dict[str, Any]) -> bool:
        return entry["direction"] == "from_bot" and needle in (entry["payload"].get("content") or "")
    return predicate


def ask(api: Api, userid: str, text: str, needle: str, timeout: float = 15.0) -> str:
    """Type `text` as `userid` and return the first answer after it that contains `needle`."""
    cursor = api.get("/sandbox/api/messages", userid=userid).json()["cursor"]
    sent = api.post("/sandbox/api/send", {"userid": userid, "text": text}).json()["entry"]["seq"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = api.get("/sandbox/api/messages", userid=userid, after=max(cursor, sent), wait=2).json()
        for entry in answer["entries"]:
            if bot_text(needle)(entry):
                return entry["payload"]["content"]
        cursor = answer["cursor"]
    raise AssertionError(f"{userid} got no answer containing {needle!r} to {text!r}: {api.conversation(userid)}")
