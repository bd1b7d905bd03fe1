"""What the fake WeCom's tests share: its corp, a settable clock, wechatpy's real client aimed at the fake."""
from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import requests
from wechatpy.enterprise import WeChatClient

from bot.fakes.wecom import FakeWeCom

SHANGHAI = ZoneInfo("Asia/Shanghai")
CORP_ID = "wwkpibot0000000001"
SECRET = "kpibot-test-secret"
AGENT_ID = 1000002
START = datetime(2025, 3, 10, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
TODAY = date(2025, 3, 10)


class FakeClock:
    """A settable clock: tests move time forward instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


class LocalClient(WeChatClient):
    """wechatpy's WeCom client pointed at the fake (wecom.md §6: API_BASE_URL and gettoken both move)."""

    def __init__(
        self, fake: FakeWeCom, *, corp_id: str | None = None, secret: str | None = None, timeout: float = 5
    ) -> None:
        super().__init__(corp_id or fake.corp_id, secret or fake.corp_secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = fake.base_url
        self._http.trust_env = False  # an HTTP(S)_PROXY in the environment must not reroute loopback calls

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(
            url=self.API_BASE_URL + "gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
        )


def loopback_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def day_start(day: date) -> int:
    return int(datetime.combine(day, time(0), SHANGHAI).timestamp())




def send_text(client: WeChatClient, touser: str, content: str, **options: Any) -> dict[str, Any]:
    return client.message.send(AGENT_ID, touser, msg={"msgtype": "text", "text": {"content": content}, **options})


def button_card(task_id: str | None) -> dict[str, Any]:
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": "自评提醒", "desc": "2025 Q1"},
        "button_list": [{"text": "开始自评", "style": 1, "key": "self_review:start"}],
    }
    if task_id is not None:
        card["task_id"] = task_id
    return {"msgtype": "template_card", "template_card": card}

