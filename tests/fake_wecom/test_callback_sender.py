"""bot.fakes.callbacks against a wechatpy-decrypting Flask app: WeCom's side of the signed callback."""
from __future__ import annotations

import base64
import dataclasses
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
import xmltodict
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import Flask, Response, request
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException
from werkzeug.serving import BaseWSGIServer, make_server

from bot.fakes.callbacks import CallbackSender, Tamper, build_card_event_xml, build_event_xml, build_text_xml
from tests.fake_wecom.support import AGENT_ID


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
