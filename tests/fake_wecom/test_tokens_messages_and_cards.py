"""The fake WeCom through wechatpy's real client: access tokens, message/send, template cards, the duplicate
check and per-member limits."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from wechatpy.exceptions import WeChatClientException

from bot.fakes.wecom import FakeWeCom
from tests.fake_wecom.support import (AGENT_ID, CORP_ID, SECRET, START, FakeClock, LocalClient, button_card,
                                      loopback_session, send_text)


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
