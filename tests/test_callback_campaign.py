"""The malformed-callback campaign: every kind of bad delivery against the running server, 0 5xx, 0 stored.

Bounded (a few hundred requests, seeded), loopback only; prints its figures (pytest -s shows them)."""
from __future__ import annotations

import base64
import logging
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import func, select

from bot.storage.models import InboxMessage
from bot.fakes.callbacks import CallbackResponse, CallbackSender, build_text_xml
from bot.wecom.crypto import CallbackCrypto
from tests.harness import AES_KEY, AGENT_ID, CORP_ID, TOKEN, BotEnv

# Straight to the local server: an HTTP(S)_PROXY in the environment must not reroute these.
LOOPBACK = requests.Session()
LOOPBACK.trust_env = False
SEED = 20261202
BIT_FLIPS = 120
MEMBER = "zhangwei"

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(9))
    + "]><xml><Encrypt>&j;</Encrypt></xml>"
)
XXE = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Encrypt>&x;</Encrypt></xml>'


def aes_raw(plaintext: bytes) -> str:
    key = base64.b64decode(AES_KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


class Campaign:
    """Builds and sends the bad deliveries; records each answer's status by kind."""

    def __init__(self, env: BotEnv) -> None:
        self.env = env
        self.sender: CallbackSender = env.chat.sender
        self.crypto = CallbackCrypto(TOKEN, AES_KEY, CORP_ID)
        self.random = random.Random(SEED)
        self.statuses: Counter[int] = Counter()
        self.by_kind: dict[str, Counter[int]] = {}

    def record(self, kind: str, status: int) -> None:
        self.statuses[status] += 1
        self.by_kind.setdefault(kind, Counter())[status] += 1

    def text_xml(self, content: str = "/help", create_time: int | None = None) -> str:
        return build_text_xml(corp_id=CORP_ID, userid=MEMBER, content=content, msg_id=self.sender.next_msg_id(),
                              create_time=create_time or self.sender.now_timestamp(), agent_id=AGENT_ID)

    def signed(self, encrypted: str, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        query = self.sender.signed_query(encrypted)
        if timestamp is not None:
            query["timestamp"] = str(timestamp)
            query["msg_signature"] = self.crypto.signature(timestamp, query["nonce"], encrypted)
        return self.crypto.envelope_body(encrypted, AGENT_ID).encode(), query

    def post(self, kind: str, body: bytes, query: dict[str, str]) -> None:
        self.record(kind, self.sender.post_raw(body, query).status)

    def raw_http(self, kind: str, head: bytes, body: bytes = b"") -> None:
        """Bytes straight onto a socket, for what requests will not send (lying Content-Length, huge headers)."""
        with socket.create_connection(("127.0.0.1", self.env.port), timeout=10) as conn:
            conn.sendall(head + body)
            answer = conn.recv(200)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
        self.record(kind, status)

    # ------------------------------------------------------------ the kinds

    def deliveries(self) -> Iterator[tuple[str, Callable[[], None]]]:
        xml = self.text_xml()
        good = self.crypto.encrypt(xml)
        yield "bad signature", lambda: self.post("bad signature", *self._bad_signature(good))
        yield "wrong corp id", lambda: self.record("wrong corp id", self.sender.post_plain_xml(xml, tamper="corp_id").status)
        yield "truncated Encrypt", lambda: self.record("truncated Encrypt",
                                                       self.sender.post_plain_xml(xml, tamper="truncated").status)
        yield "surplus base64 '='", lambda: self.post("surplus base64 '='", *self.signed(self._unpadded() + "="))
        yield "non-canonical base64", lambda: self.post("non-canonical base64", *self.signed(self._twin_bits()))
        yield "base64 with spaces", lambda: self.post("base64 with spaces", *self.signed(good[:20] + " " + good[20:]))
        yield "not base64", lambda: self.post("not base64", *self.signed("!!not*base64!!"))
        yield "inconsistent PKCS#7", lambda: self.post("inconsistent PKCS#7", *self.signed(self._bad_padding()))
        yield "pad byte 0", lambda: self.post("pad byte 0", *self.signed(self._pad_byte(0)))
        yield "pad byte 33", lambda: self.post("pad byte 33", *self.signed(self._pad_byte(33)))
        yield "XML bomb", lambda: self.post("XML bomb", BILLION_LAUGHS.encode(), self.sender.signed_query("x"))
        yield "XXE", lambda: self.post("XXE", XXE.encode(), self.sender.signed_query("x"))
        inner_bomb = BILLION_LAUGHS.replace("<Encrypt>&j;</Encrypt>", "<FromUserName>&j;</FromUserName>")
        yield "XML bomb inside", lambda: self.post("XML bomb inside", *self.signed(self.crypto.encrypt(inner_bomb)))
        inner_xxe = XXE.replace("<Encrypt>&x;</Encrypt>", "<MsgType>text</MsgType><FromUserName>&x;</FromUserName>")
        yield "XXE inside", lambda: self.post("XXE inside", *self.signed(self.crypto.encrypt(inner_xxe)))
        yield "not XML inside", lambda: self.post("not XML inside", *self.signed(self.crypto.encrypt("just text")))
        yield "no sender inside", lambda: self.post("no sender inside",
                                                    *self.signed(self.crypto.encrypt("<xml><MsgType>text</MsgType></xml>")))
        yield "deeply nested", lambda: self.post("deeply nested", b"<xml>" + b"<a>" * 7000 + b"</a>" * 7000 + b"</xml>",
                                                 self.sender.signed_query("x"))
        body, query = self.signed(good)
        yield "truncated body", lambda: self.post("truncated body", body[: len(body) // 2], query)
        yield "empty body", lambda: self.post("empty body", b"", query)
        yield "binary garbage", lambda: self.post("binary garbage", self.random.randbytes(300), query)
        yield "not UTF-8", lambda: self.post("not UTF-8", "<xml><Encrypt>é</Encrypt></xml>".encode("latin-1"), query)
        yield "missing query", lambda: self.post("missing query", body, {})
        yield "half a query", lambda: self.post("half a query", body, {"msg_signature": query["msg_signature"]})
        yield "oversize", lambda: self.post("oversize", b"<xml>" + b"x" * 100_000 + b"</xml>", query)
        yield "oversize chunked", lambda: self.record("oversize chunked", LOOPBACK.post(
            self.sender.callback_url, params=query, data=iter([b"<xml>", b"x" * 70_000, b"</xml>"]), timeout=10).status_code)
        yield "1 GiB announced", lambda: self.raw_http(
            "1 GiB announced", b"POST /wecom/callback?msg_signature=a&timestamp=1&nonce=1 HTTP/1.1\r\nHost: k\r\n"
            b"Content-Length: 1073741824\r\n\r\n", b"A" * 100)
        yield "huge headers", lambda: self.raw_http(
            "huge headers", b"POST /wecom/callback HTTP/1.1\r\nHost: k\r\nX-Big: " + b"b" * 40_000 + b"\r\n\r\n")
        yield "bad request line", lambda: self.raw_http("bad request line", b"\x16\x03\x01garbage\r\n\r\n")
        week = timedelta(days=self.env.config.bot.dedupe_keep_days + 1).total_seconds()
        now = self.sender.now_timestamp()
        yield "stale timestamp", lambda: self.post("stale timestamp",
                                                   *self.signed(self.crypto.encrypt(self.text_xml()), int(now - week)))
        yield "future timestamp", lambda: self.post("future timestamp",
                                                    *self.signed(self.crypto.encrypt(self.text_xml()), now + 86_400))
        yield "wrong method", lambda: self.record("wrong method", LOOPBACK.put(self.sender.callback_url, data=body,
                                                                                params=query, timeout=10).status_code)
        yield "GET bad signature", lambda: self.record("GET bad signature",
                                                       self.sender.verify("1234", tamper="signature").status)
        yield "GET wrong corp id", lambda: self.record("GET wrong corp id", self.sender.verify("1234", tamper="corp_id").status)
        yield "GET surplus '='", lambda: self._get("GET surplus '='", self._unpadded() + "=")
        yield "GET no echostr", lambda: self.record("GET no echostr", LOOPBACK.get(
            self.sender.callback_url, params=self.sender.signed_query(""), timeout=10).status_code)
        for number in range(BIT_FLIPS):
            yield "bit flip", lambda: self.post("bit flip", *self._flipped(good))

    def _get(self, kind: str, echostr: str) -> None:
        query = self.sender.signed_query(echostr)
        query["echostr"] = echostr
        self.record(kind, LOOPBACK.get(self.sender.callback_url, params=query, timeout=10).status_code)

    def _bad_signature(self, encrypted: str) -> tuple[bytes, dict[str, str]]:
        body, query = self.signed(encrypted)
        query["msg_signature"] = "%040x" % self.random.getrandbits(160)
        return body, query

    def _unpadded(self) -> str:
        while True:  # an Encrypt value whose base64 needs no "=", so one more "=" is surplus
            encrypted = self.crypto.encrypt(self.text_xml("/help " + "x" * self.random.randrange(40)))
            if not encrypted.endswith("="):
                return encrypted

    def _twin_bits(self) -> str:
        while True:  # one whose last quantum has unused bits (ends "=="), which a twin character can set
            encrypted = self.crypto.encrypt(self.text_xml("/help " + "x" * self.random.randrange(40)))
            if encrypted.endswith("=="):
                alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                last = alphabet.index(encrypted[-3])
                return encrypted[:-3] + alphabet[last ^ 1] + "=="

    def _framed(self) -> bytes:
        message = self.text_xml().encode()
        return b"R" * 16 + struct.pack(">I", len(message)) + message + CORP_ID.encode()

    def _bad_padding(self) -> str:
        framed = self._framed()
        pad = 32 - len(framed) % 32 or 32
        if pad < 2:
            framed += b"x"
            pad = 32 - len(framed) % 32 or 32
        return aes_raw(framed + bytes([(pad % 32) + 1]) + bytes([pad]) * (pad - 1))

    def _pad_byte(self, value: int) -> str:
        framed = self._framed()
        fill = 32 - len(framed) % 32 or 32
        return aes_raw(framed + b"\x00" * (fill - 1) + bytes([value]))

    def _flipped(self, encrypted: str) -> tuple[bytes, dict[str, str]]:
        body, query = self.signed(encrypted)
        raw = bytearray(encrypted.encode())
        position = self.random.randrange(len(encrypted.rstrip("=")))  # a character that carries data
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        raw[position] = alphabet[(alphabet.index(raw[position]) + 1 + self.random.randrange(62)) % 64]
        return self.crypto.envelope_body(raw.decode(), AGENT_ID).encode(), query


def stored(env: BotEnv) -> int:
    with env.bot.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(InboxMessage)) or 0)


def test_malformed_callbacks_get_no_5xx_are_never_stored_and_the_server_keeps_answering(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.wecom.edge")
    campaign = Campaign(bot_env)
    before = stored(bot_env)
    for _kind, send in campaign.deliveries():
        send()
    sent = sum(campaign.statuses.values())

    # Replays: one real delivery, then the same bytes again and again (WeCom's retry, or an attacker).
    response: CallbackResponse = bot_env.chat.send(MEMBER, "/help")
    bot_env.chat.expect_text(MEMBER)
    replays = Counter(campaign.sender.resend_last().status for _ in range(20))

    print(f"\nmalformed callbacks: {sent} requests, by status {dict(sorted(campaign.statuses.items()))}")
    for kind, counts in campaign.by_kind.items():
        print(f"  {kind:22s} {dict(counts)}")
    print(f"  replays of one delivery: {dict(replays)}; stored rows added: {stored(bot_env) - before}")
    print(f"  refusals counted by the server: {bot_env.bot.rejections.counts()}")
    refusal_lines = [r for r in caplog.records if "request refused" in r.getMessage()]
    print(f"  log lines for them: {len(refusal_lines)}")

    assert response.status == 200
    assert not [status for status in campaign.statuses if status >= 500 or status < 400], campaign.by_kind
    assert replays == {200: 20}
    assert stored(bot_env) - before == 1  # only the real /help; no malformed one, no replay
    assert sum(bot_env.bot.rejections.counts().values()) >= sent - campaign.by_kind["wrong method"][405]
    assert len(refusal_lines) <= len(bot_env.bot.rejections.counts())  # one line per reason per minute
    # Still alive, still answering: a real message after the campaign gets its reply.
    bot_env.chat.send(MEMBER, "你好")  # not /help again: WeCom's duplicate check would drop an identical reply
    assert bot_env.chat.expect_text(MEMBER)


def test_every_kind_of_bad_delivery_is_refused_with_the_status_that_says_why(bot_env: BotEnv) -> None:
    campaign = Campaign(bot_env)
    for _kind, send in campaign.deliveries():
        send()
    expected = {
        "bad signature": 403, "wrong corp id": 403, "bit flip": 403, "stale timestamp": 403, "future timestamp": 403,
        "GET bad signature": 403, "GET wrong corp id": 403,
        "surplus base64 '='": 400, "non-canonical base64": 400, "inconsistent PKCS#7": 400, "pad byte 0": 400,
        "XML bomb": 400, "XXE": 400, "XML bomb inside": 400, "XXE inside": 400, "truncated body": 400,
        "oversize": 413, "oversize chunked": 413, "1 GiB announced": 413, "huge headers": 431, "wrong method": 405,
    }
    for kind, status in expected.items():
        assert campaign.by_kind[kind] == Counter({status: sum(campaign.by_kind[kind].values())}), kind


def test_a_refusal_flood_writes_one_log_line_per_reason_with_the_count(bot_env: BotEnv,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.wecom.edge")
    sender = bot_env.chat.sender
    for _ in range(30):
        assert sender.post_raw(b"<xml/>", {}).status == 400
    lines = [r.getMessage() for r in caplog.records if "request refused" in r.getMessage()]
    assert len(lines) == 1 and "missing_parameters" in lines[0]
    bot_env.advance(seconds=61)
    assert sender.post_raw(b"<xml/>", {}).status == 400
    lines = [r.getMessage() for r in caplog.records if "request refused" in r.getMessage()]
    assert len(lines) == 2 and "+29 more" in lines[1]
    assert bot_env.bot.rejections.counts()["missing_parameters"] == 31
