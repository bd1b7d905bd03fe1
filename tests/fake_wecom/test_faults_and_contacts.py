"""The fake WeCom through wechatpy's real client: fault injection and the contacts API."""
from __future__ import annotations

import threading

import pytest
import requests
from wechatpy.exceptions import APILimitedException, WeChatClientException

from bot.fakes.wecom import FakeWeCom
from tests.fake_wecom.support import SECRET, FakeClock, LocalClient, send_text


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
