"""Tests for bot.fakes.wecom (through wechatpy's real client) and bot.fakes.callbacks (against a wechatpy Flask app)."""

from __future__ import annotations

import base64
import dataclasses
import threading
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
import xmltodict
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import Flask, Response, request
from wechatpy.enterprise import WeChatClient, parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import APILimitedException, InvalidSignatureException, WeChatClientException
from werkzeug.serving import BaseWSGIServer, make_server

from bot.fakes.wecom import DeliveredMessage, FakeWeCom
from bot.fakes.callbacks import CallbackSender, Tamper, build_card_event_xml, build_event_xml, build_text_xml

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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeWeCom]:
    with FakeWeCom(CORP_ID, SECRET, AGENT_ID, clock=clock.now) as server:
        server.add_department(2, "运营部", order=2)
        server.add_department(3, "社群组", parentid=2, order=1)
        server.add_department(4, "内容组", parentid=2, order=0)
        server.add_department(5, "财务部", order=1)
        server.add_user("dora", "Dora", departments=(2,), leader_in=(2,), position="运营总监")
        server.add_user("alice", "Alice", departments=(3,), direct_leader=("dora",))
        server.add_user("bob", "Bob", departments=(3, 4), main_department=4, direct_leader=("dora",))
        server.add_user("carol", "Carol", departments=(4,), leader_in=(4,))
        server.add_user("frank", "Frank", departments=(5,))
        server.add_user("gone", "Gone", departments=(5,), status=2)
        yield server


@pytest.fixture
def client(fake: FakeWeCom) -> WeChatClient:
    return LocalClient(fake)


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


# ---------------------------------------------------------------- access tokens


def test_gettoken_issues_a_token_and_returns_it_again_while_valid(
    client: LocalClient, fake: FakeWeCom, clock: FakeClock
) -> None:
    first = client.fetch_access_token()
    assert first["errcode"] == 0 and first["expires_in"] == 7200 and first["access_token"]
    clock.advance(seconds=100)
    second = client.fetch_access_token()
    assert second["access_token"] == first["access_token"]
    assert second["expires_in"] == 7200  # WeCom says 7200 for the same token, not what is left of it
    assert [call.query["corpid"] for call in fake.calls("gettoken")] == [CORP_ID, CORP_ID]


@pytest.mark.parametrize(
    ("corp_id", "secret", "errcode"),
    [(CORP_ID, "wrong", 40001), ("wwsomeoneelse", SECRET, 40013)],
    ids=["secret", "corp"],
)
def test_gettoken_rejects_wrong_credentials(fake: FakeWeCom, corp_id: str, secret: str, errcode: int) -> None:
    with pytest.raises(WeChatClientException) as raised:
        LocalClient(fake, corp_id=corp_id, secret=secret).fetch_access_token()
    assert raised.value.errcode == errcode


def test_expire_tokens_makes_calls_fail_with_42001_until_refetched(client: LocalClient, fake: FakeWeCom) -> None:
    send_text(client, "alice", "before")
    old_token = client.access_token
    fake.expire_tokens()
    with pytest.raises(WeChatClientException) as raised:
        send_text(client, "alice", "during")
    assert raised.value.errcode == 42001
    client.fetch_access_token()
    assert client.access_token != old_token
    send_text(client, "alice", "after")
    assert [m.content for m in fake.delivered("alice")] == ["before", "after"]


def test_tokens_expire_after_7200_seconds_of_fake_time(client: LocalClient, clock: FakeClock) -> None:
    send_text(client, "alice", "fresh")
    clock.advance(seconds=7199)
    send_text(client, "alice", "still fresh")
    clock.advance(seconds=1)
    with pytest.raises(WeChatClientException) as raised:
        send_text(client, "alice", "stale")
    assert raised.value.errcode == 42001


@pytest.mark.parametrize(("token", "errcode"), [(None, 41001), ("made-up-token", 40014)], ids=["missing", "unknown"])
def test_calls_without_a_valid_token_are_refused(fake: FakeWeCom, token: str | None, errcode: int) -> None:
    params = {"access_token": token} if token else {}
    url = fake.base_url + "message/send"
    response = loopback_session().post(url, params=params, json={"touser": "alice"}, timeout=5)
    answer = response.json()
    assert answer["errcode"] == errcode
    assert fake.delivered() == []


# ---------------------------------------------------------------- message/send


def test_send_text_delivers_to_the_member_and_records_the_call(client: LocalClient, fake: FakeWeCom) -> None:
    result = send_text(client, "alice", "你好，请完成自评")
    [message] = fake.delivered("alice")
    assert message.msgtype == "text"
    assert message.payload == {"content": "你好，请完成自评"}
    assert message.msgid == result["msgid"]
    assert message.at == START
    assert "invaliduser" not in result
    [call] = fake.calls("message/send")
    assert call.method == "POST"
    assert call.body is not None and call.body["agentid"] == AGENT_ID
    assert call.query["access_token"] == client.access_token
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.path = "elsewhere"  # type: ignore[misc]


def test_markdown_limit_is_2048_utf8_bytes(client: LocalClient, fake: FakeWeCom) -> None:
    exactly = "考" * 682 + "ab"  # 682 × 3 + 2 = 2048 bytes
    client.message.send_markdown(AGENT_ID, "alice", exactly)
    with pytest.raises(WeChatClientException) as raised:
        client.message.send_markdown(AGENT_ID, "alice", exactly + "c")
    assert raised.value.errcode == 45002
    assert [m.msgtype for m in fake.delivered()] == ["markdown"]


@pytest.mark.parametrize(("content", "errcode"), [("", 44004), ("x" * 2049, 45002)], ids=["empty", "2049 bytes"])
def test_bad_text_content_is_refused(client: LocalClient, fake: FakeWeCom, content: str, errcode: int) -> None:
    with pytest.raises(WeChatClientException) as raised:
        send_text(client, "alice", content)
    assert raised.value.errcode == errcode
    assert fake.delivered() == []


@pytest.mark.parametrize(("agent_id", "errcode"), [(1000003, 301002), ("1000002", 40056)], ids=["other app", "string"])
def test_agentid_must_be_this_apps_integer(client: LocalClient, fake: FakeWeCom, agent_id: Any, errcode: int) -> None:
    with pytest.raises(WeChatClientException) as raised:
        client.message.send_text(agent_id, "alice", "hi")
    assert raised.value.errcode == errcode


def test_unknown_msgtype_is_refused(client: LocalClient) -> None:
    with pytest.raises(WeChatClientException) as raised:
        client.message.send(AGENT_ID, "alice", msg={"msgtype": "mpnews_v2", "mpnews_v2": {}})
    assert raised.value.errcode == 40008


def test_textcard_and_news_are_delivered(client: LocalClient, fake: FakeWeCom) -> None:
    description = '<div class="highlight">A</div>'
    client.message.send_text_card(AGENT_ID, "alice", "考核结果", description, "https://example.invalid/r")
    article = {"title": "周报", "description": "", "url": "https://example.invalid", "image": ""}
    client.message.send_articles(AGENT_ID, "alice", [article])
    assert [m.msgtype for m in fake.delivered("alice")] == ["textcard", "news"]
    assert fake.delivered("alice")[0].payload["title"] == "考核结果"


def test_partly_invalid_recipients_are_listed_lowercased(client: LocalClient, fake: FakeWeCom) -> None:
    result = send_text(client, "alice|Ghost|gone|alice", "hi")
    assert result["errcode"] == 0
    assert result["invaliduser"] == "ghost|gone"
    assert [m.touser for m in fake.delivered()] == ["alice"]


def test_all_invalid_recipients_fail_with_81013(client: LocalClient, fake: FakeWeCom) -> None:
    with pytest.raises(WeChatClientException) as raised:
        send_text(client, "ghost|nobody", "hi")
    assert raised.value.errcode == 81013
    assert fake.delivered() == []


def test_toparty_reaches_members_of_the_department_and_its_children(client: LocalClient, fake: FakeWeCom) -> None:
    result = client.message.send(AGENT_ID, "", party_ids="2|99", msg={"msgtype": "text", "text": {"content": "月会"}})
    assert result["invalidparty"] == "99"
    assert sorted(m.touser for m in fake.delivered()) == ["alice", "bob", "carol", "dora"]


def test_a_single_send_to_several_members_shares_one_msgid(client: LocalClient, fake: FakeWeCom) -> None:
    result = send_text(client, "alice|bob", "hi")
    assert [(m.touser, m.msgid) for m in fake.delivered()] == [("alice", result["msgid"]), ("bob", result["msgid"])]


# ---------------------------------------------------------------- template cards


def test_interactive_card_returns_response_code_and_task_id_is_single_use(client: LocalClient, fake: FakeWeCom) -> None:
    result = client.message.send(AGENT_ID, "alice", msg=button_card("review-2025q1-alice"))
    [card] = fake.delivered("alice")
    assert card.task_id == "review-2025q1-alice"
    assert card.response_code == result["response_code"] and card.response_code
    with pytest.raises(WeChatClientException) as raised:
        client.message.send(AGENT_ID, "alice", msg=button_card("review-2025q1-alice"))
    assert raised.value.errcode == 42014
    assert len(fake.delivered()) == 1


@pytest.mark.parametrize("task_id", [None, "has space", "x" * 129], ids=["missing", "bad chars", "too long"])
def test_interactive_card_needs_a_valid_task_id(client: LocalClient, fake: FakeWeCom, task_id: str | None) -> None:
    with pytest.raises(WeChatClientException) as raised:
        client.message.send(AGENT_ID, "alice", msg=button_card(task_id))
    assert raised.value.errcode == 42014
    assert fake.delivered() == []


def test_text_notice_card_needs_no_task_id_and_gets_no_response_code(client: LocalClient, fake: FakeWeCom) -> None:
    card = {
        "card_type": "text_notice",
        "main_title": {"title": "周报已生成"},
        "card_action": {"type": 1, "url": "https://example.invalid"},
    }
    result = client.message.send(AGENT_ID, "alice", msg={"msgtype": "template_card", "template_card": card})
    assert "response_code" not in result
    assert fake.delivered("alice")[0].response_code is None


def test_update_template_card_consumes_response_codes_once(
    client: LocalClient, fake: FakeWeCom, clock: FakeClock
) -> None:
    sent = client.message.send(AGENT_ID, "alice", msg=button_card("task-1"))
    update = {
        "userids": ["alice"],
        "agentid": AGENT_ID,
        "response_code": sent["response_code"],
        "button": {"replace_name": "已开始"},
    }
    client.post("message/update_template_card", data=update)
    with pytest.raises(WeChatClientException) as reused:
        client.post("message/update_template_card", data=update)
    assert reused.value.errcode == 40058

    click_code = fake.issue_response_code("task-1")  # what the template_card_event callback would carry
    clock.advance(hours=72, seconds=1)
    client.fetch_access_token()  # the old token died long ago; only the response code is under test
    with pytest.raises(WeChatClientException) as expired:
        client.post("message/update_template_card", data={**update, "response_code": click_code})
    assert expired.value.errcode == 40058

    [recorded] = fake.card_updates()
    assert (recorded.task_id, recorded.button_replace_name, recorded.userids) == ("task-1", "已开始", ("alice",))


def test_a_click_code_lasts_72_hours_and_updates_only_who_received_the_card(
    client: LocalClient, fake: FakeWeCom, clock: FakeClock
) -> None:
    client.message.send(AGENT_ID, "alice", msg=button_card("task-2"))
    click_code = fake.issue_response_code("task-2")
    clock.advance(hours=71, minutes=59)
    client.fetch_access_token()
    base = {"agentid": AGENT_ID, "response_code": click_code, "button": {"replace_name": "已批准 · 李娜"}}
    with pytest.raises(WeChatClientException) as nobody:
        client.post("message/update_template_card", data=base)  # whom to update must be named
    assert nobody.value.errcode == 40058
    result = client.post("message/update_template_card", data={**base, "userids": ["alice", "Bob"]})
    assert result["invaliduser"] == ["bob"]  # bob never received task-2
    [recorded] = fake.card_updates()
    assert recorded.userids == ("alice",)


def test_a_text_notice_without_buttons_cannot_have_its_button_renamed(client: LocalClient, fake: FakeWeCom) -> None:
    card = {"card_type": "text_notice", "task_id": "notice-1", "main_title": {"title": "通知"},
            "card_action": {"type": 1, "url": "https://example.invalid"},
            "action_menu": {"desc": "更多", "action_list": [{"text": "不再提醒", "key": "mute"}]}}
    client.message.send(AGENT_ID, "alice", msg={"msgtype": "template_card", "template_card": card})
    code = fake.issue_response_code("notice-1")
    with pytest.raises(WeChatClientException) as raised:
        client.post("message/update_template_card", data={"userids": ["alice"], "agentid": AGENT_ID,
                                                          "response_code": code, "button": {"replace_name": "x"}})
    assert raised.value.errcode == 40058 and fake.card_updates() == []


# ---------------------------------------------------------------- duplicate check and per-member limits


def test_duplicate_check_suppresses_identical_message_within_interval(
    client: LocalClient, fake: FakeWeCom, clock: FakeClock
) -> None:
    options = {"enable_duplicate_check": 1, "duplicate_check_interval": 1800}
    first = send_text(client, "alice|bob", "请提交自评", **options)
    clock.advance(seconds=1799)
    again = send_text(client, "alice", "请提交自评", **options)
    different = send_text(client, "alice", "请提交自评！", **options)
    assert again["errcode"] == 0 and again["msgid"] != first["msgid"]
    assert [m.content for m in fake.suppressed()] == ["请提交自评"]
    assert [m.content for m in fake.delivered("alice")] == ["请提交自评", "请提交自评！"]
    assert different["errcode"] == 0

    clock.advance(seconds=1)
    send_text(client, "alice", "请提交自评", **options)
    assert [m.content for m in fake.delivered("alice")][-1] == "请提交自评"
    assert len(fake.suppressed()) == 1


def test_duplicate_check_compares_the_whole_request_even_fields_no_one_sees(
    client: LocalClient, fake: FakeWeCom, clock: FakeClock
) -> None:
    send_text(client, "alice", "已保存。", enable_duplicate_check=1, duplicate_check_interval=3600)
    send_text(client, "alice", "已保存。", enable_duplicate_check=1, duplicate_check_interval=3601)
    assert [m.content for m in fake.delivered("alice")] == ["已保存。", "已保存。"]
    answer = send_text(client, "alice", "已保存。", enable_duplicate_check=1, duplicate_check_interval=3601)
    assert answer["errcode"] == 0 and answer["msgid"]  # silently dropped: WeCom still answers ok
    assert len(fake.delivered("alice")) == 2 and len(fake.suppressed()) == 1


def test_a_message_sent_without_the_check_is_still_remembered_by_it(client: LocalClient, fake: FakeWeCom) -> None:
    send_text(client, "alice", "same")
    send_text(client, "alice", "same", enable_duplicate_check=1, duplicate_check_interval=60)
    send_text(client, "alice", "same", enable_duplicate_check=0, duplicate_check_interval=60)
    assert len(fake.delivered("alice")) == 3 and fake.suppressed() == []  # the JSON differs each time


def test_without_duplicate_check_identical_messages_are_delivered(client: LocalClient, fake: FakeWeCom) -> None:
    send_text(client, "alice", "same")
    send_text(client, "alice", "same")
    assert len(fake.delivered("alice")) == 2 and fake.suppressed() == []


def test_31st_message_to_a_member_within_a_minute_is_silently_dropped(
    client: LocalClient, fake: FakeWeCom, clock: FakeClock
) -> None:
    for index in range(30):
        send_text(client, "alice", f"m{index}")
        clock.advance(seconds=1)
    clock.advance(seconds=29)  # now 59 s after the first delivery
    answer = send_text(client, "alice", "m30")
    send_text(client, "bob", "other members are unaffected")
    assert answer["errcode"] == 0
    assert len(fake.delivered("alice")) == 30
    assert [m.content for m in fake.dropped()] == ["m30"]

    clock.advance(seconds=1)  # the first delivery is now exactly 60 s old and leaves the window
    send_text(client, "alice", "m31")
    assert fake.delivered("alice")[-1].content == "m31"
    assert len(fake.delivered("bob")) == 1


def test_1001st_message_to_a_member_within_an_hour_is_dropped(fake: FakeWeCom, clock: FakeClock) -> None:
    token = LocalClient(fake).access_token
    session = loopback_session()

    def send(content: str) -> dict[str, Any]:
        body = {"touser": "alice", "agentid": AGENT_ID, "msgtype": "text", "text": {"content": content}}
        return session.post(fake.base_url + "message/send", params={"access_token": token}, json=body, timeout=5).json()

    for index in range(1000):
        send(f"m{index}")
        clock.advance(seconds=3)  # 20 a minute: under the minute limit
    assert send("m1000")["errcode"] == 0
    assert len(fake.delivered("alice")) == 1000
    assert [m.content for m in fake.dropped()] == ["m1000"]
    clock.advance(seconds=600)
    send("m1001")
    assert fake.delivered("alice")[-1].content == "m1001"
    session.close()


# ---------------------------------------------------------------- fault injection


def test_injected_system_busy_fails_once_without_delivering(client: LocalClient, fake: FakeWeCom) -> None:
    fake.inject("message/send", errcode=-1)
    with pytest.raises(WeChatClientException) as raised:
        send_text(client, "alice", "first try")
    assert raised.value.errcode == -1
    assert fake.delivered() == []
    send_text(client, "alice", "second try")
    assert [m.content for m in fake.delivered()] == ["second try"]
    assert [call.fault is not None for call in fake.calls("/cgi-bin/message/send")] == [True, False]


def test_injected_45009_raises_wechatpys_api_limited_exception(client: LocalClient, fake: FakeWeCom) -> None:
    fake.inject("message/send", errcode=45009, times=2)
    for _ in range(2):
        with pytest.raises(APILimitedException):
            send_text(client, "alice", "limited")
    send_text(client, "alice", "through")
    assert [m.content for m in fake.delivered()] == ["through"]


def test_injected_http_502_looks_like_a_proxy_error(client: LocalClient, fake: FakeWeCom) -> None:
    fake.inject("message/send", http_status=502)
    with pytest.raises(WeChatClientException) as raised:
        send_text(client, "alice", "behind a broken proxy")
    assert raised.value.errcode is None
    assert raised.value.response.status_code == 502
    assert "502 Bad Gateway" in raised.value.response.text
    assert fake.delivered() == []


def test_injected_delay_times_the_client_out_but_still_delivers(fake: FakeWeCom) -> None:
    impatient = LocalClient(fake, timeout=0.3)
    impatient.fetch_access_token()
    fake.inject("message/send", delay=3.0)
    with pytest.raises(requests.Timeout):
        send_text(impatient, "alice", "did it arrive?")
    [message] = fake.wait_for("alice", timeout=2)
    assert message.content == "did it arrive?"


def test_injection_targets_only_its_path(client: LocalClient, fake: FakeWeCom) -> None:
    fake.inject("user/get", errcode=60020)
    send_text(client, "alice", "unaffected")
    with pytest.raises(WeChatClientException) as raised:
        client.user.get("alice")
    assert raised.value.errcode == 60020
    assert client.user.get("alice")["name"] == "Alice"


def test_a_changed_secret_answers_40001_until_it_is_changed_back(fake: FakeWeCom) -> None:
    bot = LocalClient(fake, secret=SECRET)
    fake.set_corp_secret("reset-by-an-admin")
    with pytest.raises(WeChatClientException) as refused:
        bot.fetch_access_token()
    assert refused.value.errcode == 40001
    fake.set_corp_secret(SECRET)
    assert bot.fetch_access_token()["errcode"] == 0


def test_an_untrusted_ip_gets_60020_naming_it_on_every_api_but_gettoken(client: LocalClient, fake: FakeWeCom) -> None:
    fake.set_trusted_ips(["203.0.113.7"])
    assert client.fetch_access_token()["errcode"] == 0  # gettoken works, so a test call is needed to see it
    with pytest.raises(WeChatClientException) as refused:
        send_text(client, "alice", "hello")
    assert refused.value.errcode == 60020
    assert "from ip: 127.0.0.1" in refused.value.errmsg
    assert fake.delivered() == []
    fake.set_trusted_ips(["127.0.0.1"])
    send_text(client, "alice", "hello")
    assert len(fake.delivered("alice")) == 1


def test_company_wide_ceilings_per_api_answer_45009_for_the_window(
    client: LocalClient, fake: FakeWeCom, clock: FakeClock
) -> None:
    fake.set_api_limits(per_minute=3, per_hour=5)
    for index in range(3):
        send_text(client, "alice", f"m{index}")
    with pytest.raises(APILimitedException):
        send_text(client, "bob", "over the minute")
    client.get("user/get", params={"userid": "alice"})  # another API has its own count
    clock.advance(seconds=60)
    send_text(client, "alice", "m3")
    send_text(client, "alice", "m4")
    with pytest.raises(APILimitedException):
        send_text(client, "alice", "over the hour")
    clock.advance(seconds=3600)
    send_text(client, "alice", "m5")
    assert [m.content for m in fake.delivered()] == ["m0", "m1", "m2", "m3", "m4", "m5"]


def test_injection_can_fail_gettoken(fake: FakeWeCom) -> None:
    fake.inject("gettoken", http_status=503)
    with pytest.raises(WeChatClientException) as raised:
        LocalClient(fake).fetch_access_token()
    assert raised.value.response.status_code == 503


def test_clear_injections_drops_unused_faults(client: LocalClient, fake: FakeWeCom) -> None:
    fake.inject("message/send", http_status=502, times=100)
    fake.inject("user/get", errcode=-1)
    fake.clear_injections("message/send")
    send_text(client, "alice", "through")
    with pytest.raises(WeChatClientException):
        client.user.get("alice")
    fake.inject("user/get", errcode=-1)
    fake.clear_injections()
    assert client.user.get("alice")["userid"] == "alice"
    assert len(fake.delivered()) == 1


def test_wait_for_calls_sees_requests_that_delivered_nothing(client: LocalClient, fake: FakeWeCom) -> None:
    fake.inject("message/send", http_status=502)
    client.fetch_access_token()
    outcome: list[BaseException] = []

    def send_in_background() -> None:
        try:
            send_text(client, "alice", "x")
        except WeChatClientException as error:
            outcome.append(error)

    sender = threading.Thread(target=send_in_background)
    sender.start()
    [call] = fake.wait_for_calls("message/send", 1)
    sender.join()
    assert call.fault is not None and call.fault.http_status == 502
    assert len(outcome) == 1 and fake.delivered() == []
    with pytest.raises(AssertionError, match="message/send"):
        fake.wait_for_calls("message/send", 2, timeout=0.05)


def test_inject_rejects_meaningless_faults(fake: FakeWeCom) -> None:
    with pytest.raises(ValueError):
        fake.inject("message/send")
    with pytest.raises(ValueError):
        fake.inject("message/send", errcode=-1, http_status=502)


# ---------------------------------------------------------------- contacts


def test_department_list_returns_the_subtree_with_leaders(client: LocalClient) -> None:
    subtree = client.department.get(2)
    assert [d["id"] for d in subtree] == [2, 4, 3]  # siblings by order
    operations = subtree[0]
    assert operations == {
        "id": 2, "name": "运营部", "name_en": "", "department_leader": ["dora"], "parentid": 1, "order": 2
    }
    assert [d["id"] for d in client.department.get()] == [1, 5, 2, 4, 3]


def test_unknown_department_fails_with_60003(client: LocalClient) -> None:
    with pytest.raises(WeChatClientException) as raised:
        client.department.get(42)
    assert raised.value.errcode == 60003


def test_user_list_includes_sub_departments_only_with_fetch_child(client: LocalClient) -> None:
    assert [u["userid"] for u in client.user.list(2)] == ["dora"]
    assert [u["userid"] for u in client.user.list(2, fetch_child=True)] == ["dora", "alice", "bob", "carol"]
    bob = next(u for u in client.user.list(4) if u["userid"] == "bob")
    assert bob["department"] == [3, 4] and bob["main_department"] == 4
    assert bob["direct_leader"] == ["dora"] and bob["is_leader_in_dept"] == [0, 0]
    assert bob["status"] == 1 and len(bob["order"]) == 2


def test_user_simplelist_has_the_short_records(client: LocalClient) -> None:
    assert client.user.list(3, simple=True) == [
        {"userid": "alice", "name": "Alice", "department": [3]},
        {"userid": "bob", "name": "Bob", "department": [3, 4]},
    ]


def test_user_get_and_its_unknown_user_error(client: LocalClient) -> None:
    carol = client.user.get("carol")
    assert carol["is_leader_in_dept"] == [1] and carol["main_department"] == 4
    with pytest.raises(WeChatClientException) as raised:
        client.user.get("nobody")
    assert raised.value.errcode == 60111


def test_contact_changes_are_visible_through_the_api(client: LocalClient, fake: FakeWeCom) -> None:
    fake.set_user("alice", departments=(5,), leader_in=(5,), position="财务")
    fake.remove_user("dora")
    alice = client.user.get("alice")
    assert (alice["department"], alice["main_department"], alice["is_leader_in_dept"]) == ([5], 5, [1])
    assert alice["direct_leader"] == []  # dora left
    assert client.department.get(2)[0]["department_leader"] == []
    with pytest.raises(WeChatClientException):
        client.user.get("dora")


def test_fixture_api_refuses_inconsistent_contacts(fake: FakeWeCom) -> None:
    with pytest.raises(ValueError):
        fake.add_user("x", "X", departments=(77,))
    with pytest.raises(ValueError):
        fake.add_user("y", "Y", departments=(3,), leader_in=(4,))
    with pytest.raises(ValueError):
        fake.add_department(9, "孤儿", parentid=77)
    with pytest.raises(ValueError):
        fake.set_user("alice", nickname="Al")


def test_the_apps_visibility_limits_what_the_contacts_api_answers(client: LocalClient, fake: FakeWeCom) -> None:
    fake.set_visibility(departments=(3,), users=("frank",))  # 可见范围: 社群组 and one member of 财务部
    assert [d["id"] for d in client.department.get()] == [3]  # department/list without id: only what it sees
    assert [u["userid"] for u in client.user.list(3)] == ["alice", "bob"]
    alice = client.user.get("alice")
    assert alice["direct_leader"] == []  # dora leads 运营部, outside the app's sight
    assert client.user.get("frank")["userid"] == "frank"  # visible by name, though 财务部 is not
    for call in (lambda: client.department.get(2), lambda: client.user.list(5), lambda: client.user.get("dora"),
                 lambda: client.user.list(2, fetch_child=True)):
        with pytest.raises(WeChatClientException) as raised:
            call()
        assert raised.value.errcode == 60011
    fake.set_visibility()  # back to the whole company
    assert client.user.get("alice")["direct_leader"] == ["dora"]


def test_only_people_inside_the_apps_visibility_receive_its_messages(client: LocalClient, fake: FakeWeCom) -> None:
    fake.set_visibility(departments=(3,))
    answer = send_text(client, "alice|dora", "通知")
    assert answer["invaliduser"] == "dora"
    assert [m.touser for m in fake.delivered()] == ["alice"]
    with pytest.raises(WeChatClientException) as raised:
        send_text(client, "dora", "通知")
    assert raised.value.errcode == 81013  # every recipient invalid


# ---------------------------------------------------------------- customer-contact statistics


def test_a_member_without_customer_contact_permission_gets_84074(client: LocalClient, fake: FakeWeCom) -> None:
    fake.deny_customer_contact("alice")
    day = day_start(TODAY - timedelta(days=1))
    for path, body in (("externalcontact/get_user_behavior_data", {"userid": ["alice"], "start_time": day,
                                                                   "end_time": day}),
                       ("externalcontact/groupchat/statistic", {"day_begin_time": day,
                                                                "owner_filter": {"userid_list": ["bob", "alice"]}})):
        with pytest.raises(WeChatClientException) as raised:
            client.post(path, data=body)
        assert raised.value.errcode == 84074
    with pytest.raises(WeChatClientException) as raised:
        client.get("externalcontact/list", params={"userid": "alice"})
    assert raised.value.errcode == 84074
    assert client.post("externalcontact/get_user_behavior_data",
                       data={"userid": ["bob"], "start_time": day, "end_time": day})["behavior_data"]


def test_a_second_concurrent_call_of_one_stats_api_gets_45033(client: LocalClient, fake: FakeWeCom) -> None:
    fake.limit_stats_concurrency(1, hold=1.0)
    day = day_start(TODAY - timedelta(days=1))
    body = {"userid": ["bob"], "start_time": day, "end_time": day}
    first: dict[str, Any] = {}
    slow = threading.Thread(target=lambda: first.update(client.post("externalcontact/get_user_behavior_data",
                                                                    data=body)))
    slow.start()
    fake.wait_for_calls("externalcontact/get_user_behavior_data", 1)
    with pytest.raises(WeChatClientException) as raised:  # the first is still being answered
        client.post("externalcontact/get_user_behavior_data", data=body)
    assert raised.value.errcode == 45033
    fake.set_customer_count("bob", 2)
    assert len(client.get("externalcontact/list", params={"userid": "bob"})["external_userid"]) == 2  # its own limit
    slow.join(timeout=5)
    assert first["errcode"] == 0
    assert client.post("externalcontact/get_user_behavior_data", data=body)["errcode"] == 0  # one at a time is fine


def test_behavior_data_sums_several_members_per_day(client: LocalClient, fake: FakeWeCom) -> None:
    d1, d2, d3 = TODAY - timedelta(days=3), TODAY - timedelta(days=2), TODAY - timedelta(days=1)
    fake.set_behavior_data(
        "alice", d2, chat_cnt=10, message_cnt=40, reply_percentage=90.0, avg_reply_time=10, new_contact_cnt=2
    )
    fake.set_behavior_data(
        "bob", d2, chat_cnt=30, message_cnt=60, reply_percentage=50.0, avg_reply_time=30, negative_feedback_cnt=1
    )
    fake.set_behavior_data("alice", d3, new_apply_cnt=4)
    fake.set_behavior_data("carol", d2, chat_cnt=99)  # not asked for

    result = client.external_contact.get_user_behavior_data(["alice", "bob"], day_start(d1), day_start(d3))
    days = result["behavior_data"]
    assert [entry["stat_time"] for entry in days] == [day_start(d1), day_start(d2), day_start(d3)]
    assert days[0] == {
        "stat_time": day_start(d1), "chat_cnt": 0, "message_cnt": 0, "negative_feedback_cnt": 0,
        "new_apply_cnt": 0, "new_contact_cnt": 0,
    }
    assert days[1]["chat_cnt"] == 40 and days[1]["message_cnt"] == 100
    assert days[1]["new_contact_cnt"] == 2 and days[1]["negative_feedback_cnt"] == 1
    assert days[1]["reply_percentage"] == 60.0  # (90×10 + 50×30) / 40
    assert days[1]["avg_reply_time"] == 25  # (10×10 + 30×30) / 40
    assert days[2]["new_apply_cnt"] == 4 and "reply_percentage" not in days[2]


def test_behavior_data_by_partyid_covers_the_department_tree(client: LocalClient, fake: FakeWeCom) -> None:
    day = TODAY - timedelta(days=1)
    for userid, chats in (("dora", 1), ("alice", 2), ("carol", 4), ("frank", 8)):
        fake.set_behavior_data(userid, day, chat_cnt=chats)
    result = client.post(
        "externalcontact/get_user_behavior_data",
        data={"partyid": [2], "start_time": day_start(day), "end_time": day_start(day) + 3600},
    )
    assert result["behavior_data"][0]["chat_cnt"] == 7


def test_behavior_data_spans_at_most_30_days(client: LocalClient) -> None:
    end = TODAY - timedelta(days=1)
    first = day_start(end - timedelta(days=29))
    thirty = client.external_contact.get_user_behavior_data(["alice"], first, day_start(end))
    assert len(thirty["behavior_data"]) == 30
    with pytest.raises(WeChatClientException) as raised:
        client.external_contact.get_user_behavior_data(["alice"], day_start(end - timedelta(days=30)), day_start(end))
    assert raised.value.errcode == 600018


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (TODAY - timedelta(days=181), TODAY - timedelta(days=175)),
        (TODAY - timedelta(days=1), TODAY - timedelta(days=2)),
        (TODAY + timedelta(days=1), TODAY + timedelta(days=1)),
    ],
    ids=["beyond 180 days", "reversed", "future"],
)
def test_behavior_data_refuses_windows_wecom_refuses(client: LocalClient, start: date, end: date) -> None:
    with pytest.raises(WeChatClientException) as raised:
        client.external_contact.get_user_behavior_data(["alice"], day_start(start), day_start(end))
    assert raised.value.errcode == 600018


def test_behavior_data_refuses_milliseconds_unknown_users_and_empty_requests(client: LocalClient) -> None:
    start = day_start(TODAY - timedelta(days=1))
    with pytest.raises(WeChatClientException) as millis:
        client.external_contact.get_user_behavior_data(["alice"], start * 1000, start * 1000)
    with pytest.raises(WeChatClientException) as unknown:
        client.external_contact.get_user_behavior_data(["alice", "nobody"], start, start)
    with pytest.raises(WeChatClientException) as empty:
        client.external_contact.get_user_behavior_data([], start, start)
    assert (millis.value.errcode, unknown.value.errcode, empty.value.errcode) == (600018, 60111, 40058)


def test_behavior_data_covers_today_at_the_oldest_180_days_back(client: LocalClient) -> None:
    result = client.external_contact.get_user_behavior_data(["alice"], day_start(TODAY), day_start(TODAY))
    assert len(result["behavior_data"]) == 1
    oldest = TODAY - timedelta(days=180)
    result = client.external_contact.get_user_behavior_data(["alice"], day_start(oldest), day_start(oldest))
    assert len(result["behavior_data"]) == 1


def test_groupchat_statistic_pages_through_owners_in_order(client: LocalClient, fake: FakeWeCom) -> None:
    yesterday = TODAY - timedelta(days=1)
    for index, owner in enumerate(["alice", "bob", "carol", "dora", "frank"]):
        fake.set_group_statistic(owner, yesterday, new_chat_cnt=index, chat_total=10 - index, member_total=100)
    fake.set_group_statistic("alice", yesterday - timedelta(days=1), new_chat_cnt=10)

    owners, offset = [], 0
    while True:
        page = client.external_contact_group_chat.statistic(day_start(yesterday), offset=offset, limit=2)
        assert page["total"] == 5
        owners += [item["owner"] for item in page["items"]]
        offset = page["next_offset"]
        if offset == page["total"]:
            break
    assert owners == ["frank", "dora", "carol", "bob", "alice"]  # new_chat_cnt descending

    two_days = client.external_contact_group_chat.statistic(
        day_start(yesterday - timedelta(days=1)),
        day_start(yesterday),
        owner_userid_list=["alice", "bob"],
        order_by=2,
        order_asc=1,
    )
    assert [item["owner"] for item in two_days["items"]] == ["bob", "alice"]  # chat_total ascending: 9, 10
    assert two_days["items"][1]["data"]["new_chat_cnt"] == 10  # summed over both days
    assert set(two_days["items"][1]["data"]) >= {"chat_has_msg", "member_has_msg", "msg_total", "new_member_cnt"}


def test_groupchat_statistic_refuses_today_and_unknown_owners(client: LocalClient) -> None:
    with pytest.raises(WeChatClientException) as today:
        client.external_contact_group_chat.statistic(day_start(TODAY))
    with pytest.raises(WeChatClientException) as unknown:
        client.external_contact_group_chat.statistic(day_start(TODAY - timedelta(days=1)), owner_userid_list=["nobody"])
    assert (today.value.errcode, unknown.value.errcode) == (600018, 60111)


def test_stats_fixtures_refuse_unknown_fields(fake: FakeWeCom) -> None:
    with pytest.raises(ValueError):
        fake.set_behavior_data("alice", TODAY, chats=1)
    with pytest.raises(ValueError):
        fake.set_group_statistic("alice", TODAY, groups=1)


# ---------------------------------------------------------------- media, unknown paths


def test_media_upload_then_file_message(client: LocalClient, fake: FakeWeCom) -> None:
    content = b"PK\x03\x04 binary\r\n--boundary-lookalike\x00\xff"
    uploaded = client.media.upload("file", ("考核结果.xlsx", content))
    [media] = fake.uploads()
    assert (media.media_id, media.filename, media.content) == (uploaded["media_id"], "考核结果.xlsx", content)
    client.message.send_file(AGENT_ID, "alice", uploaded["media_id"])
    assert fake.delivered("alice")[0].payload == {"media_id": uploaded["media_id"]}
    with pytest.raises(WeChatClientException) as raised:
        client.message.send_file(AGENT_ID, "alice", "no-such-media")
    assert raised.value.errcode == 40007


def test_media_upload_refuses_unknown_type(client: LocalClient) -> None:
    with pytest.raises(WeChatClientException) as raised:
        client.media.upload("spreadsheet", ("a.xlsx", b"12345"))
    assert raised.value.errcode == 40004


def test_unknown_path_answers_http_404_and_is_recorded(client: LocalClient, fake: FakeWeCom) -> None:
    with pytest.raises(WeChatClientException) as raised:
        client.post("appchat/send", data={"chatid": "x"})
    assert raised.value.response.status_code == 404
    assert "appchat/send" in raised.value.response.text
    assert len(fake.calls("appchat/send")) == 1


def test_wrong_http_method_is_refused(client: LocalClient) -> None:
    with pytest.raises(WeChatClientException) as raised:
        client.get("message/send")
    assert raised.value.errcode == 43002


# ---------------------------------------------------------------- waiting, subscribing, resetting, concurrency


def test_wait_for_returns_messages_sent_from_another_thread(client: LocalClient, fake: FakeWeCom) -> None:
    client.fetch_access_token()
    sender = threading.Thread(target=lambda: [send_text(client, "bob", f"n{i}") for i in range(3)])
    sender.start()
    messages = fake.wait_for(lambda m: m.touser == "bob" and m.content == "n2")
    sender.join()
    assert [m.content for m in messages] == ["n2"]
    assert len(fake.wait_for("bob", count=3)) == 3


def test_wait_for_timeout_reports_what_was_delivered(client: LocalClient, fake: FakeWeCom) -> None:
    send_text(client, "bob", "only bob got this")
    with pytest.raises(AssertionError) as raised:
        fake.wait_for("alice", timeout=0.05)
    assert "only bob got this" in str(raised.value) and "to 'alice'" in str(raised.value)


def test_subscribers_hear_each_delivery_until_unsubscribed(client: LocalClient, fake: FakeWeCom) -> None:
    heard: list[DeliveredMessage] = []
    unsubscribe = fake.subscribe(heard.append)
    fake.subscribe(lambda message: 1 / 0)  # a broken subscriber must not break delivery
    send_text(client, "alice|bob", "one")
    unsubscribe()
    send_text(client, "alice", "two")
    assert [(m.touser, m.content) for m in heard] == [("alice", "one"), ("bob", "one")]
    assert len(fake.delivered()) == 3


def test_reset_records_keeps_wecoms_memory(client: LocalClient, fake: FakeWeCom) -> None:
    options = {"enable_duplicate_check": 1}
    send_text(client, "alice", "once", **options)
    fake.reset_records()
    assert fake.calls() == [] and fake.delivered() == []
    send_text(client, "alice", "once", **options)
    assert fake.delivered() == [] and len(fake.suppressed()) == 1


def test_concurrent_senders_are_all_recorded(fake: FakeWeCom) -> None:
    members = [f"member{index}" for index in range(8)]
    for userid in members:
        fake.add_user(userid, userid)
    clients = [LocalClient(fake) for _ in members]
    errors: list[BaseException] = []

    def blast(client: LocalClient, userid: str) -> None:
        try:
            for index in range(25):
                send_text(client, userid, f"{userid}-{index}")
        except BaseException as error:  # surfaced below; a thread's exception would otherwise vanish
            errors.append(error)

    threads = [threading.Thread(target=blast, args=pair) for pair in zip(clients, members)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    delivered = fake.delivered()
    assert len(delivered) == 200 and len({m.msgid for m in delivered}) == 200
    for userid in members:
        assert [m.content for m in fake.delivered(userid)] == [f"{userid}-{i}" for i in range(25)]


def test_stop_closes_the_port(clock: FakeClock) -> None:
    fake = FakeWeCom(CORP_ID, SECRET, AGENT_ID, clock=clock.now).start()
    url = fake.base_url + "gettoken"
    session = loopback_session()
    assert session.get(url, params={"corpid": CORP_ID, "corpsecret": SECRET}, timeout=5).json()["errcode"] == 0
    fake.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url, timeout=5)


# ---------------------------------------------------------------- CallbackSender against a wechatpy-decrypting app

CB_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
CB_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CB_CORP_ID = "ww1436e0e65a779aee"
OFFICIAL_ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="


@dataclasses.dataclass
class CallbackApp:
    url: str
    raw: list[tuple[bytes, bytes]]  # (query string, body) as received
    plaintexts: list[str]
    rejections: list[str]


@pytest.fixture
def callback_app() -> Iterator[CallbackApp]:
    crypto = WeChatCrypto(CB_TOKEN, CB_AES_KEY, CB_CORP_ID)
    app = Flask("callback-under-test")
    state = CallbackApp("", [], [], [])

    @app.route("/wecom/callback", methods=["GET", "POST"])
    def callback() -> Response | str:
        args = request.args
        try:
            if request.method == "GET":
                return crypto.check_signature(args["msg_signature"], args["timestamp"], args["nonce"], args["echostr"])
            state.raw.append((request.query_string, request.get_data()))
            state.plaintexts.append(
                crypto.decrypt_message(request.get_data(), args["msg_signature"], args["timestamp"], args["nonce"])
            )
        except (InvalidSignatureException, InvalidCorpIdException) as error:
            state.rejections.append(type(error).__name__)
            return Response("", status=403)
        except Exception as error:  # garbage bodies: anything else wechatpy trips over
            state.rejections.append(type(error).__name__)
            return Response("", status=400)
        return ""

    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/wecom/callback"
    yield state
    server.shutdown()
    thread.join(timeout=5)


def make_sender(app: CallbackApp, **options: Any) -> CallbackSender:
    return CallbackSender(
        app.url, token=CB_TOKEN, encoding_aes_key=CB_AES_KEY, corp_id=CB_CORP_ID, agent_id=AGENT_ID, **options
    )


def official_echostr_prefix() -> bytes:
    key = base64.b64decode(CB_AES_KEY + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    ciphertext = base64.b64decode(OFFICIAL_ECHOSTR)
    return (decryptor.update(ciphertext) + decryptor.finalize())[:16]


def test_verify_reproduces_the_official_sample_request(callback_app: CallbackApp) -> None:
    prefix = official_echostr_prefix()
    sender = make_sender(
        callback_app,
        clock=lambda: datetime.fromtimestamp(1476416373, timezone.utc),
        nonce_factory=lambda: "47744683",
        random_bytes=lambda size: prefix[:size],
    )
    response = sender.verify("1288432023552776189")
    assert response.status == 200 and response.text == "1288432023552776189"
    delivery = sender.last_delivery
    assert delivery is not None
    assert delivery.query == {
        "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "timestamp": "1476416373",
        "nonce": "47744683",
        "echostr": OFFICIAL_ECHOSTR,
    }
    raw_query = urlsplit(delivery.url).query
    assert "%2B" in raw_query and "%2F" in raw_query and "+" not in raw_query


def test_verify_with_random_echostrs_round_trips(callback_app: CallbackApp) -> None:
    sender = make_sender(callback_app)
    for index in range(12):  # random prefixes: most of these echostrs carry a '+' or '/'
        echo = f"{index}{'9' * index}"
        response = sender.verify(echo)
        assert (response.status, response.text) == (200, echo)
        assert response.elapsed < 5


def test_verify_with_bad_signature_is_refused(callback_app: CallbackApp) -> None:
    assert make_sender(callback_app).verify("123", tamper=Tamper.BAD_SIGNATURE).status == 403


def test_tamper_accepts_plain_strings(callback_app: CallbackApp) -> None:
    sender = make_sender(callback_app)
    assert sender.text("alice", "hi", tamper="signature").status == 403
    assert sender.event("alice", "enter_agent", tamper="corp_id").status == 403
    assert sender.card_click("alice", event_key="k", task_id="t", tamper="truncated").status in (400, 403)
    assert callback_app.rejections[:2] == ["InvalidSignatureException", "InvalidCorpIdException"]
    with pytest.raises(ValueError):
        sender.text("alice", "hi", tamper="nonsense")


def test_text_callback_decrypts_and_parses_with_wechatpy(callback_app: CallbackApp) -> None:
    sender = make_sender(callback_app, clock=lambda: datetime(2025, 3, 10, 2, 0, tzinfo=timezone.utc))
    assert sender.text("alice", "/report <本月> ]]> & 完成").status == 200
    sender.text("alice", "second", msg_id=42)
    first, second = (parse_message(xml) for xml in callback_app.plaintexts)
    assert (first.type, first.content) == ("text", "/report <本月> ]]> & 完成")
    assert (first.source, first.target) == ("alice", CB_CORP_ID)
    assert first.agent == AGENT_ID and first.time == int(datetime(2025, 3, 10, 2, 0, tzinfo=timezone.utc).timestamp())
    assert first.id > 2**62 and second.id == 42
    sender.text("bob", "third")
    assert parse_message(callback_app.plaintexts[-1]).id == first.id + 1  # MsgIds auto-increase
    envelope = xmltodict.parse(callback_app.raw[0][1])["xml"]
    assert envelope["ToUserName"] == CB_CORP_ID and envelope["AgentID"] == str(AGENT_ID)


def test_event_and_card_click_callbacks_carry_wecoms_fields(callback_app: CallbackApp) -> None:
    sender = make_sender(callback_app)
    sender.event("alice", "enter_agent")
    sender.event("alice", "click", "menu:report", create_time=1700000000)
    sender.card_click(
        "alice",
        event_key="submit",
        task_id="review-1",
        card_type="vote_interaction",
        response_code="rc-1",
        selected_items={"score": ["4"], "tags": ["a", "b"]},
    )
    enter, click, card = callback_app.plaintexts
    assert parse_message(enter).event == "enter_agent"
    click_message = parse_message(click)
    assert (click_message.event, click_message.key, click_message.time) == ("click", "menu:report", 1700000000)
    fields = xmltodict.parse(card, force_list=("SelectedItem", "OptionId"))["xml"]
    assert (fields["Event"], fields["EventKey"], fields["TaskId"]) == ("template_card_event", "submit", "review-1")
    assert (fields["CardType"], fields["ResponseCode"]) == ("vote_interaction", "rc-1")
    assert fields["AgentID"] == str(AGENT_ID)
    items = {item["QuestionKey"]: item["OptionIds"]["OptionId"] for item in fields["SelectedItems"]["SelectedItem"]}
    assert items == {"score": ["4"], "tags": ["a", "b"]}


@pytest.mark.parametrize(
    ("tamper", "rejection"),
    [
        (Tamper.BAD_SIGNATURE, "InvalidSignatureException"),
        (Tamper.WRONG_CORP_ID, "InvalidCorpIdException"),
        (Tamper.TRUNCATED_ENCRYPT, None),  # wechatpy fails on it in data-dependent ways
    ],
)
def test_tampered_deliveries_are_refused(callback_app: CallbackApp, tamper: Tamper, rejection: str | None) -> None:
    xml = build_text_xml(corp_id=CB_CORP_ID, userid="alice", content="hi", msg_id=1, create_time=1, agent_id=AGENT_ID)
    response = make_sender(callback_app).post_plain_xml(xml, tamper=tamper)
    assert response.status in (400, 403)
    assert callback_app.plaintexts == []
    assert len(callback_app.rejections) == 1
    if rejection is not None:
        assert callback_app.rejections == [rejection]


def test_post_raw_sends_exact_bytes(callback_app: CallbackApp) -> None:
    sender = make_sender(callback_app)
    response = sender.post_raw(b"\x00not xml", {"msg_signature": "x", "timestamp": "1", "nonce": "2"})
    assert response.status == 400
    assert callback_app.raw == [(b"msg_signature=x&timestamp=1&nonce=2", b"\x00not xml")]


def test_resend_last_repeats_the_identical_delivery(callback_app: CallbackApp) -> None:
    sender = make_sender(callback_app)
    with pytest.raises(RuntimeError):
        sender.resend_last()
    sender.text("alice", "/score 5")
    sender.resend_last()
    first, retry = callback_app.raw
    assert first == retry
    assert callback_app.plaintexts[0] == callback_app.plaintexts[1]


def test_builders_emit_wecoms_plaintext_layout() -> None:
    text = build_text_xml(corp_id="ww1", userid="alice", content="hi", msg_id=7, create_time=1700000000, agent_id=100)
    assert text == (
        "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[alice]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>"
        "<MsgId>7</MsgId><AgentID>100</AgentID></xml>"
    )
    subscribe = build_event_xml(corp_id="ww1", userid="b", event="subscribe", create_time=1, agent_id=2, event_key=None)
    assert "EventKey" not in subscribe
    assert subscribe.endswith("<Event><![CDATA[subscribe]]></Event><AgentID>2</AgentID></xml>")
    location = build_event_xml(
        corp_id="ww1",
        userid="bob",
        event="LOCATION",
        create_time=1,
        agent_id=2,
        extra_fields={"Latitude": "23.1", "Precision": 30},
    )
    assert "<Latitude><![CDATA[23.1]]></Latitude><Precision>30</Precision><AgentID>2</AgentID>" in location
    card = build_card_event_xml(corp_id="ww1", userid="bob", create_time=1, agent_id=2, event_key="k", task_id="t")
    assert "<CardType><![CDATA[button_interaction]]></CardType><ResponseCode><![CDATA[]]></ResponseCode>" in card
    assert "SelectedItems" not in card
