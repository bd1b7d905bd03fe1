"""The one signed-callback helper: builds the XML WeCom sends, encrypts and signs it, and POSTs it to a callback URL."""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from types import TracebackType
from typing import Self
from urllib.parse import quote, urlencode

import requests

from bot.wecom.crypto import CallbackCrypto, cdata

__all__ = [
    "CallbackDelivery",
    "CallbackResponse",
    "CallbackSender",
    "Tamper",
    "build_card_event_xml",
    "build_event_xml",
    "build_text_xml",
]

# MsgIds are 64-bit; one process-wide sequence keeps two senders in one test run from colliding on the
# bot's dedupe key. itertools.count is advanced atomically under the GIL.
_MSG_IDS = itertools.count(7_000_000_000_000_000_000)

FieldValue = str | int


class Tamper(StrEnum):
    """Ways to spoil a delivery for bad-request tests; the plain strings ("signature", …) work too."""

    BAD_SIGNATURE = "signature"  # msg_signature does not sign the Encrypt value (-40001)
    WRONG_CORP_ID = "corp_id"  # correctly signed, but encrypted for another CorpID (-40005)
    TRUNCATED_ENCRYPT = "truncated"  # correctly signed over a cut-off Encrypt value (fails to decrypt)


@dataclass(frozen=True)
class CallbackResponse:
    """What the callback endpoint answered; `elapsed` is in seconds (WeCom gives up after 5)."""

    status: int
    text: str
    content: bytes
    elapsed: float


@dataclass(frozen=True)
class CallbackDelivery:
    """One request exactly as sent, so it can be sent again byte for byte (WeCom's retry)."""

    method: str
    url: str
    query: dict[str, str]
    body: bytes | None


# ---------------------------------------------------------------- plaintext builders (pure)


def _element(name: str, value: FieldValue) -> str:
    # WeCom writes numbers bare and strings as CDATA.
    return f"<{name}>{value}</{name}>" if isinstance(value, int) else f"<{name}>{cdata(value)}</{name}>"


def _xml(fields: Sequence[tuple[str, FieldValue]], tail: str = "") -> str:
    return "<xml>" + "".join(_element(name, value) for name, value in fields) + tail + "</xml>"


def build_text_xml(*, corp_id: str, userid: str, content: str, msg_id: int, create_time: int, agent_id: int) -> str:
    """The plaintext of a text message from `userid`, as WeCom encrypts it."""
    return _xml(
        [
            ("ToUserName", corp_id),
            ("FromUserName", userid),
            ("CreateTime", create_time),
            ("MsgType", "text"),
            ("Content", content),
            ("MsgId", msg_id),
            ("AgentID", agent_id),
        ]
    )


def build_event_xml(
    *,
    corp_id: str,
    userid: str,
    event: str,
    create_time: int,
    agent_id: int,
    event_key: str | None = "",
    extra_fields: Mapping[str, FieldValue] | None = None,
) -> str:
    """The plaintext of an event (enter_agent, click, subscribe, …); `event_key=None` leaves EventKey out."""
    fields: list[tuple[str, FieldValue]] = [
        ("ToUserName", corp_id),
        ("FromUserName", userid),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", event),
    ]
    if event_key is not None:
        fields.append(("EventKey", event_key))
    fields.extend((extra_fields or {}).items())
    fields.append(("AgentID", agent_id))
    return _xml(fields)


def build_card_event_xml(
    *,
    corp_id: str,
    userid: str,
    create_time: int,
    agent_id: int,
    event_key: str,
    task_id: str,
    card_type: str = "button_interaction",
    response_code: str = "",
    selected_items: Mapping[str, Sequence[str]] | None = None,
    event: str = "template_card_event",
) -> str:
    """The plaintext of a template_card_event (or _menu_event); selected_items maps QuestionKey → OptionIds."""
    selected = ""
    if selected_items:
        selected = (
            "<SelectedItems>"
            + "".join(
                "<SelectedItem>"
                + _element("QuestionKey", question_key)
                + "<OptionIds>"
                + "".join(_element("OptionId", option_id) for option_id in option_ids)
                + "</OptionIds></SelectedItem>"
                for question_key, option_ids in selected_items.items()
            )
            + "</SelectedItems>"
        )
    return _xml(
        [
            ("ToUserName", corp_id),
            ("FromUserName", userid),
            ("CreateTime", create_time),
            ("MsgType", "event"),
            ("Event", event),
            ("EventKey", event_key),
            ("TaskId", task_id),
            ("CardType", card_type),
            ("ResponseCode", response_code),
            ("AgentID", agent_id),
        ],
        tail=selected,
    )


# ---------------------------------------------------------------- the sender


def _random_nonce() -> str:
    # WeCom's nonces are decimal strings of about ten digits.
    return str(1_000_000_000 + secrets.randbelow(9_000_000_000))


class CallbackSender:
    """Plays WeCom's side of the callback protocol against one callback URL.

    Transport failures (timeouts, refused connections) propagate as `requests` exceptions.
    """

    def __init__(
        self,
        callback_url: str,
        *,
        token: str,
        encoding_aes_key: str,
        corp_id: str,
        agent_id: int,
        clock: Callable[[], datetime] | None = None,
        timeout: float = 5.0,
        nonce_factory: Callable[[], str] = _random_nonce,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.callback_url = callback_url
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.timeout = timeout
        self._crypto = CallbackCrypto(token, encoding_aes_key, corp_id)
        # Encrypted for a CorpID with one extra character, for Tamper.WRONG_CORP_ID.
        self._foreign_crypto = CallbackCrypto(token, encoding_aes_key, corp_id + "x")
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._nonce_factory = nonce_factory
        self._random_bytes = random_bytes
        self._sessions = threading.local()  # requests.Session is not safe to share across threads
        self._all_sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._last_delivery: CallbackDelivery | None = None

    def __repr__(self) -> str:
        return f"CallbackSender({self.callback_url!r}, corp_id={self.corp_id!r}, agent_id={self.agent_id})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            sessions, self._all_sessions = self._all_sessions, []
        for session in sessions:
            session.close()

    @property
    def last_delivery(self) -> CallbackDelivery | None:
        return self._last_delivery

    def now_timestamp(self) -> int:
        return int(self._clock().timestamp())

    @staticmethod
    def next_msg_id() -> int:
        return next(_MSG_IDS)

    # ------------------------------------------------------------ WeCom's requests

    def verify(self, echostr_plain: str, *, tamper: Tamper | str | None = None) -> CallbackResponse:
        """WeCom's GET URL check; a correct endpoint answers with `echostr_plain` as the whole body."""
        echostr, query = self._seal(echostr_plain, tamper)
        query["echostr"] = echostr
        return self._send(CallbackDelivery("GET", self._url(query), query, None))

    def text(
        self,
        userid: str,
        content: str,
        *,
        msg_id: int | None = None,
        create_time: int | None = None,
        tamper: Tamper | str | None = None,
    ) -> CallbackResponse:
        """Deliver a text message from `userid`."""
        return self.post_plain_xml(
            build_text_xml(
                corp_id=self.corp_id,
                userid=userid,
                content=content,
                msg_id=self.next_msg_id() if msg_id is None else msg_id,
                create_time=self.now_timestamp() if create_time is None else create_time,
                agent_id=self.agent_id,
            ),
            tamper=tamper,
        )

    def event(
        self,
        userid: str,
        event: str,
        event_key: str | None = "",
        *,
        create_time: int | None = None,
        tamper: Tamper | str | None = None,
        **extra_fields: FieldValue,
    ) -> CallbackResponse:
        """Deliver an event (enter_agent, click, subscribe, …) from `userid`."""
        return self.post_plain_xml(
            build_event_xml(
                corp_id=self.corp_id,
                userid=userid,
                event=event,
                create_time=self.now_timestamp() if create_time is None else create_time,
                agent_id=self.agent_id,
                event_key=event_key,
                extra_fields=extra_fields,
            ),
            tamper=tamper,
        )

    def card_click(
        self,
        userid: str,
        *,
        event_key: str,
        task_id: str,
        card_type: str = "button_interaction",
        response_code: str = "",
        selected_items: Mapping[str, Sequence[str]] | None = None,
        create_time: int | None = None,
        tamper: Tamper | str | None = None,
    ) -> CallbackResponse:
        """Deliver a template_card_event: `userid` pressed `event_key` on card `task_id`.

        Against FakeWeCom pass `response_code=fake.issue_response_code(task_id)` so the bot can update the card.
        """
        return self.post_plain_xml(
            build_card_event_xml(
                corp_id=self.corp_id,
                userid=userid,
                create_time=self.now_timestamp() if create_time is None else create_time,
                agent_id=self.agent_id,
                event_key=event_key,
                task_id=task_id,
                card_type=card_type,
                response_code=response_code,
                selected_items=selected_items,
            ),
            tamper=tamper,
        )

    def prepare_text(self, userid: str, content: str) -> CallbackDelivery:
        """Seal a text message now, to send later with `send` (load tests keep encryption out of the timing)."""
        xml = build_text_xml(corp_id=self.corp_id, userid=userid, content=content, msg_id=self.next_msg_id(),
                             create_time=self.now_timestamp(), agent_id=self.agent_id)
        encrypted, query = self._seal(xml, None)
        body = self._crypto.envelope_body(encrypted, self.agent_id).encode("utf-8")
        return CallbackDelivery("POST", self._url(query), query, body)

    def send(self, delivery: CallbackDelivery) -> CallbackResponse:
        return self._send(delivery)

    def post_plain_xml(self, xml: str, *, tamper: Tamper | str | None = None) -> CallbackResponse:
        """Encrypt, sign and POST a plaintext callback XML, optionally spoiled by `tamper`."""
        encrypted, query = self._seal(xml, tamper)
        return self.post_raw(self._crypto.envelope_body(encrypted, self.agent_id).encode("utf-8"), query)

    def post_raw(self, body: bytes, query: Mapping[str, str]) -> CallbackResponse:
        """POST exactly `body` with exactly `query` (for garbage, oversized or hand-signed deliveries)."""
        query = dict(query)
        return self._send(CallbackDelivery("POST", self._url(query), query, body))

    def signed_query(self, encrypted: str) -> dict[str, str]:
        """A fresh msg_signature/timestamp/nonce query for an Encrypt (or echostr) value."""
        timestamp, nonce = str(self.now_timestamp()), self._nonce_factory()
        signature = self._crypto.signature(timestamp, nonce, encrypted)
        return {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}

    def resend_last(self) -> CallbackResponse:
        """Send the previous request again, identical to the byte, as WeCom does when it retries."""
        if self._last_delivery is None:
            raise RuntimeError("nothing has been sent yet")
        return self._send(self._last_delivery)

    # ------------------------------------------------------------ transport

    def _seal(self, plaintext: str, tamper: Tamper | str | None) -> tuple[str, dict[str, str]]:
        """Encrypt `plaintext` and sign it (or spoil either, as `tamper` says); returns (Encrypt, query)."""
        tamper = None if tamper is None else Tamper(tamper)
        crypto = self._foreign_crypto if tamper is Tamper.WRONG_CORP_ID else self._crypto
        encrypted = crypto.encrypt(plaintext, self._random_bytes(16))
        if tamper is Tamper.TRUNCATED_ENCRYPT:
            encrypted = encrypted[: len(encrypted) // 2]
        signed = encrypted + "tampered" if tamper is Tamper.BAD_SIGNATURE else encrypted
        timestamp, nonce = str(self.now_timestamp()), self._nonce_factory()
        signature = self._crypto.signature(timestamp, nonce, signed)
        return encrypted, {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}

    def _url(self, query: Mapping[str, str]) -> str:
        # Percent-encode everything ('+' → %2B, '/' → %2F): a raw '+' in echostr would arrive as a space.
        if not query:
            return self.callback_url
        separator = "&" if "?" in self.callback_url else "?"
        return self.callback_url + separator + urlencode(query, quote_via=quote, safe="")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._sessions, "session", None)
        if session is None:
            session = requests.Session()
            # Callbacks go to a local server; an HTTP(S)_PROXY in the environment must not reroute them.
            session.trust_env = False
            self._sessions.session = session
            with self._lock:
                self._all_sessions.append(session)
        return session

    def _send(self, delivery: CallbackDelivery) -> CallbackResponse:
        self._last_delivery = delivery
        headers = {"Content-Type": "text/xml"} if delivery.body is not None else {}
        started = time.perf_counter()
        response = self._session().request(
            delivery.method, delivery.url, data=delivery.body, headers=headers, timeout=self.timeout
        )
        elapsed = time.perf_counter() - started
        # Decode as UTF-8 whatever the headers say: requests would guess ISO-8859-1 for a bare text/plain.
        text = response.content.decode("utf-8", "replace")
        return CallbackResponse(response.status_code, text, response.content, elapsed)
