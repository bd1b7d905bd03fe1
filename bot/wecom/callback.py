"""The WeCom callback endpoint: verify, decrypt, store under the dedupe key, answer an empty 200 at once."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from flask import Blueprint, Response, request
from sqlalchemy.orm import Session, sessionmaker

from bot import pausepoints
from bot.clock import Clock
from bot.config import Config
from bot.storage.db import urgent_connection
from bot.wecom.edge import Rejections
from bot.wecom.inbox import store_update
from bot.wecom.updates import MalformedUpdate, parse_update
from bot.wecom.crypto import CallbackCrypto, CallbackCryptoError, InvalidSignatureError, ReceiveIdMismatchError

log = logging.getLogger(__name__)

# A callback is sent the moment it is made; this much clock difference between WeCom and us is normal.
FUTURE_SKEW = timedelta(hours=1)


def _plain(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def create_callback_blueprint(config: Config, session_factory: sessionmaker[Session], clock: Clock,
                              on_stored: Callable[[str], None], rejections: Rejections) -> Blueprint:
    # The project's strict implementation (exact PKCS#7 and base64, constant-time signature compare).
    crypto = CallbackCrypto(config.wecom.token.reveal(), config.wecom.encoding_aes_key.reveal(), config.wecom.corp_id)
    blueprint = Blueprint("wecom_callback", __name__)
    limit = config.server.max_body_bytes
    keep = timedelta(days=config.bot.dedupe_keep_days)

    def refuse(reason: str, body: str, status: int, detail: str = "") -> Response:
        rejections.reject(reason, f"{detail} from {request.remote_addr}".strip())
        return _plain(body, status)

    def signature_args() -> tuple[str, str, str] | None:
        args = request.args
        values = (args.get("msg_signature", ""), args.get("timestamp", ""), args.get("nonce", ""))
        return values if all(values) else None

    def stale(timestamp: str) -> bool:
        """Signed, but too old (or too far ahead) to be told apart from a replay once its dedupe key is pruned."""
        try:
            seconds = int(timestamp)
        except ValueError:
            return True
        now = clock.now().timestamp()
        return not now - keep.total_seconds() <= seconds <= now + FUTURE_SKEW.total_seconds()

    @blueprint.get("/wecom/callback")
    def verify_url() -> Response:
        params = signature_args()
        echostr = request.args.get("echostr", "")
        if params is None or not echostr:
            return refuse("missing_parameters", "missing parameters", 400, "GET")
        try:
            plain = crypto.verify_url(params[0], params[1], params[2], echostr)
        except (InvalidSignatureError, ReceiveIdMismatchError) as error:
            return refuse("invalid_signature", "invalid signature", 403, f"GET {type(error).__name__}")
        except (CallbackCryptoError, UnicodeDecodeError) as error:
            return refuse("undecryptable", "bad echostr", 400, f"GET {type(error).__name__}")
        return _plain(plain, 200)

    @blueprint.post("/wecom/callback")
    def receive() -> Response:
        params = signature_args()
        if params is None:
            return refuse("missing_parameters", "missing parameters", 400, "POST")
        # waitress refuses a larger announced body before reading it; this catches chunked bodies.
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            return refuse("body_too_large", "body too large", 413, f"over {limit} bytes")
        try:
            plain_xml = crypto.decrypt_envelope(body, params[0], params[1], params[2])
        except (InvalidSignatureError, ReceiveIdMismatchError) as error:
            return refuse("invalid_signature", "invalid signature", 403, type(error).__name__)
        except CallbackCryptoError as error:
            return refuse("undecryptable", "bad body", 400, f"{type(error).__name__}: {str(error)[:200]}")
        if stale(params[1]):
            return refuse("stale_timestamp", "stale timestamp", 403, f"timestamp {params[1][:20]}")
        try:
            update = parse_update(plain_xml)
        except MalformedUpdate as error:
            return refuse("unreadable_message", "bad message", 400, str(error)[:200])
        try:
            with urgent_connection(session_factory.kw["bind"]) as connection:
                is_new = store_update(connection, update, clock)
        except Exception:  # noqa: BLE001
            # Not stored means not acknowledged: a non-200 makes WeCom deliver it again later.
            log.exception("could not store callback from %s", update.from_user)
            return _plain("try again", 503)
        pausepoints.reached("callback.stored")
        if is_new:
            on_stored(update.from_user)
        return _plain("", 200)

    return blueprint
