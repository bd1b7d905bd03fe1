"""Parsing decrypted callbacks into Updates, and WeCom's dedupe rules."""
from __future__ import annotations

import pytest

from bot.chat.dispatcher import parse_command
from bot.wecom.updates import MalformedUpdate, parse_update

TEXT = ("<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[zhangwei]]></FromUserName>"
        "<CreateTime>1764212400</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[/report edit]]></Content><MsgId>7000000000000000001</MsgId>"
        "<AgentID>1000002</AgentID></xml>")

CARD = ("<xml><ToUserName>ww1</ToUserName><FromUserName>lina</FromUserName><CreateTime>1764212401</CreateTime>"
        "<MsgType>event</MsgType><Event>template_card_event</Event><EventKey>report:submit</EventKey>"
        "<TaskId>task-1</TaskId><CardType>button_interaction</CardType><ResponseCode>rc-1</ResponseCode>"
        "<SelectedItems><SelectedItem><QuestionKey>q1</QuestionKey><OptionIds><OptionId>o1</OptionId>"
        "</OptionIds></SelectedItem></SelectedItems><AgentID>1000002</AgentID></xml>")


def test_text_message_fields_and_key_by_msgid() -> None:
    update = parse_update(TEXT)
    assert (update.kind, update.from_user, update.content) == ("text", "zhangwei", "/report edit")
    assert update.dedupe_key() == "msg:7000000000000000001"


def test_card_click_with_a_single_selected_item_is_a_list() -> None:
    update = parse_update(CARD)
    assert update.is_card_click
    assert (update.event_key, update.task_id, update.response_code) == ("report:submit", "task-1", "rc-1")
    assert len(update.selected) == 1 and update.selected[0].option_ids == ("o1",)


def test_events_are_keyed_by_sender_time_event_key_and_task() -> None:
    first = parse_update(CARD)
    same = parse_update(CARD)
    other_button = parse_update(CARD.replace("report:submit", "report:edit"))
    assert first.dedupe_key() == same.dedupe_key()
    assert first.dedupe_key() != other_button.dedupe_key()
    assert len(first.dedupe_key()) <= 191


@pytest.mark.parametrize("body", ["not xml", "<xml><MsgType>text</MsgType></xml>", "<other/>",
                                  "<xml><FromUserName>a</FromUserName><MsgType>text</MsgType>"
                                  "<CreateTime>soon</CreateTime></xml>"])
def test_malformed_bodies_are_rejected(body: str) -> None:
    with pytest.raises(MalformedUpdate):
        parse_update(body)


@pytest.mark.parametrize("text, expected", [
    ("/help", ("/help", "")),
    ("  /Score 张伟 engagement 4 活动组织得好 ", ("/score", "张伟 engagement 4 活动组织得好")),
    ("／帮助", ("/帮助", "")),
    ("/report\n本周关键动作：访谈 3 位用户", ("/report", "本周关键动作：访谈 3 位用户")),
])
def test_commands_are_recognised_with_their_arguments(text: str, expected: tuple[str, str]) -> None:
    parsed = parse_command(text)
    assert parsed is not None and (parsed.name, parsed.args) == expected


@pytest.mark.parametrize("text", ["你好", "1", "/", "提交 /report"])
def test_plain_text_is_not_a_command(text: str) -> None:
    assert parse_command(text) is None
