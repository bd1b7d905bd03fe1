"""The WeCom callback endpoint: verify, decrypt, store under the dedupe key, answer an empty 200 at once."""
from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Response, current_app, request
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.clock import Clock
from bot.config import Config
from bot.db import urgent_connection
from bot.inbox import store_update
from bot.updates import MalformedUpdate, parse_update

log = logging.getLogger(__name__)


def _plain(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def create_callback_blueprint(config: Config, session_factory: sessionmaker[Session], clock: Clock,
                              on_stored: Callable[[str], None]) -> Blueprint:
    crypto = WeChatCrypto(config.wecom.token.reveal(), config.wecom.encoding_aes_key.reveal(), config.wecom.corp_id)
    blueprint = Blueprint("wecom_callback", __name__)
    limit = config.server.max_body_bytes

    def signature_args() -> tuple[str, str, str] | None:
        args = request.args
        values = (args.get("msg_signature", ""), args.get("timestamp", ""), args.get("nonce", ""))
        return values if all(values) else None

    @blueprint.get("/wecom/callback")
    def verify_url() -> Response:
        params = signature_args()
        echostr = request.args.get("echostr", "")
        if params is None or not echostr:
            log.warning("callback GET without msg_signature/timestamp/nonce/echostr from %s", request.remote_addr)
            return _plain("missing parameters", 400)
        try:
            plain = crypto.check_signature(params[0], params[1], params[2], echostr)
        except (InvalidSignatureException, InvalidCorpIdException) as error:
            log.warning("callback GET rejected (%s) from %s", type(error).__name__, request.remote_addr)
            return _plain("invalid signature", 403)
        except Exception as error:  # noqa: BLE001 - any other decrypt failure is the caller's bad input
            log.warning("callback GET undecryptable (%s) from %s", type(error).__name__, request.remote_addr)
            return _plain("bad echostr", 400)
        text = plain.decode("utf-8") if isinstance(plain, bytes) else str(plain)
        return _plain(text, 200)

    @blueprint.post("/wecom/callback")
    def receive() -> Response:
        params = signature_args()
        if params is None:
            log.warning("callback POST without msg_signature/timestamp/nonce from %s", request.remote_addr)
            return _plain("missing parameters", 400)
        if request.content_length is not None and request.content_length > limit:
            log.warning("callback POST of %s bytes refused (limit %s)", request.content_length, limit)
            return _plain("body too large", 413)
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            log.warning("callback POST over %s bytes refused", limit)
            return _plain("body too large", 413)
        try:
            plain_xml = crypto.decrypt_message(body, params[0], params[1], params[2])
        except (InvalidSignatureException, InvalidCorpIdException) as error:
            log.warning("callback POST rejected (%s) from %s", type(error).__name__, request.remote_addr)
            return _plain("invalid signature", 403)
        except Exception as error:  # noqa: BLE001 - garbage in: a clear 400, never a crash
            log.warning("callback POST undecryptable (%s: %s)", type(error).__name__, str(error)[:200])
            return _plain("bad body", 400)
        try:
            update = parse_update(plain_xml)
        except MalformedUpdate as error:
            log.warning("callback POST decrypted to something unreadable: %s", error)
            return _plain("bad message", 400)
        try:
            with urgent_connection(session_factory.kw["bind"]) as connection:
                is_new = store_update(connection, update, clock)
        except Exception:  # noqa: BLE001
            # Not stored means not acknowledged: a non-200 makes WeCom deliver it again later.
            log.exception("could not store callback from %s", update.from_user)
            return _plain("try again", 503)
        if is_new:
            on_stored(update.from_user)
        return _plain("", 200)

    return blueprint
