"""The fake WeCom through wechatpy's real client: customer-contact statistics, media and unknown paths, waiting,
subscribing, resetting, concurrency."""
from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from wechatpy.exceptions import WeChatClientException

from bot.fakes.wecom import DeliveredMessage, FakeWeCom
from tests.fake_wecom.support import (AGENT_ID, CORP_ID, SECRET, TODAY, FakeClock, LocalClient, day_start,
                                      loopback_session, send_text)


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
