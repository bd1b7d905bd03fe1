"""One outbox row's call to WeCom (the exactly-once request, send or card update) and what the answer means."""
from __future__ import annotations

# How "exactly once" works with WeCom's duplicate check (wecom.md §2, §9).
#
# With enable_duplicate_check=1 WeCom silently drops (errcode 0) a request whose JSON equals one it
# delivered to the same person within duplicate_check_interval. Every attempt of every row keeps the
# check on, and each row's request differs from every other row's in one field a person never sees:
# duplicate_check_interval itself, set from the row's per-member sequence number (`dup_seq`, fixed at
# its first claim) to a value between the configured shortest window and WeCom's 4 h. One member gets
# at most 4,000 messages in 4 h and there are at least 4,001 values, so two rows of one member never
# share a request within any window, while a resend of the same row (after a timeout or a crash
# between WeCom's answer and our record) repeats its request byte for byte and is dropped by WeCom.
# A documented field is used rather than an extra, unknown one because WeCom may parse the request
# into its own structure before comparing, which would discard an unknown field but not this one.
# Template cards also carry a task_id per row; a resend that meets 42014 (task_id used) arrived.

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.exceptions import WeChatClientException

from bot.clock import Clock
from bot.config import MAX_DUPLICATE_WINDOW, Config
from bot.storage.models import OutboxMessage
from bot.templates import render
from bot.wecom import card_state
from bot.wecom.client import CONFIG_ERRORS, TOKEN_ERRORS, WeComClient

SEND_API = "message/send"
UPDATE_CARD_API = "message/update_template_card"  # WeCom doc 94888
# Transient: WeCom is busy or rate-limiting us, or the network failed; worth another try later.
TRANSIENT_ERRORS = {-1, 45009, 45033, 45011}
FREQUENCY_LIMITED = 45009  # a per-minute limit: the next try waits that minute out
TASK_ID_USED = 42014
RESPONSE_CODE_USED = 40058


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | retry | failed | paused (WeCom says the app is misconfigured: hold everything)
    error: str | None = None
    msgid: str | None = None
    response_code: str | None = None
    retry_after: timedelta | None = None
    answered: bool = True  # False when WeCom's answer never came (network, proxy error page)


class Delivery:
    """Makes the one WeCom call an outbox row stands for; safe to use from several threads at once."""

    def __init__(self, config: Config, session_factory: sessionmaker[Session], client: WeComClient,
                 clock: Clock) -> None:
        self.config = config
        self.sessions = session_factory
        self.client = client
        self.clock = clock

    def request_body(self, row: OutboxMessage) -> dict[str, Any]:
        """The exact request for a row: the same on every attempt, different from every other row's."""
        shortest = self.config.wecom.duplicate_check_interval
        span = MAX_DUPLICATE_WINDOW - shortest + 1
        return {
            "touser": row.touser,
            "msgtype": row.msgtype,
            "agentid": self.config.wecom.agent_id,
            row.msgtype: row.payload,
            "enable_duplicate_check": 1,
            "duplicate_check_interval": shortest + (row.dup_seq or 0) % span,
        }

    def deliver(self, row: OutboxMessage) -> Outcome:
        if row.msgtype == card_state.CARD_UPDATE:
            return self._update_card(row)
        try:
            result = self.client.call(SEND_API, data=self.request_body(row))
        except WeChatClientException as error:
            # A row claimed before (a recorded attempt, or a claim that ran out after a crash) may have arrived.
            resend = row.attempts > 0 or row.status == "sending"
            if error.errcode == TASK_ID_USED and resend:
                return Outcome("sent", error=self._reason("task_id_used", errcode=error.errcode))
            return self._classify(error)
        except requests.RequestException as error:
            return _network_failure(error)
        response_code = result.get("response_code")
        invalid = {u.lower() for u in str(result.get("invaliduser", "")).split("|") if u}
        if row.touser.lower() in invalid:
            return Outcome("failed", error=self._reason("not_visible"))
        return Outcome("sent", msgid=str(result.get("msgid", "")) or None,
                       response_code=str(response_code) if response_code else None)

    def _update_card(self, row: OutboxMessage) -> Outcome:
        """A finished card: its buttons become what happened (message/update_template_card)."""
        code = row.payload.get("response_code") or None
        if code is None:
            with self.sessions() as session:
                card = card_state.sent_card(session, row.payload["task_id"])
            if card.status in ("pending", "sending"):
                # The card went out in this same pass and its response_code is not recorded yet: try again
                # as soon as it is (the next pass), keeping this person's later messages behind it.
                return Outcome("retry", error=self._reason("card_not_sent_yet"), retry_after=timedelta(0))
            if card.response_code is None or card.sent_at is None:
                return Outcome("failed", error=self._reason("card_never_sent", status=card.status or "unknown"))
            if self.clock.now() - card.sent_at >= card_state.RESPONSE_CODE_VALIDITY:
                return Outcome("failed", error=self._reason("response_code_expired"))
            code = card.response_code
        body = {"userids": [row.touser], "agentid": self.config.wecom.agent_id, "response_code": code,
                "button": {"replace_name": row.payload["replace_name"]}}
        try:
            result = self.client.call(UPDATE_CARD_API, data=body)
        except WeChatClientException as error:
            if error.errcode == RESPONSE_CODE_USED and row.attempts > 0:
                # The code is spent: an earlier attempt that we could not record did the update.
                return Outcome("sent", error=self._reason("update_resent", errcode=error.errcode))
            return self._classify(error)
        except requests.RequestException as error:
            return _network_failure(error)
        invalid = {str(u).lower() for u in result.get("invaliduser") or ()}
        if row.touser.lower() in invalid:
            return Outcome("failed", error=self._reason("not_card_holder"))
        return Outcome("sent")

    def _reason(self, reason: str, **variables: Any) -> str:
        """What an outcome says about a row, as `kpibot outbox` shows it to an admin."""
        return render("sender/last_error.txt.j2", self.config.bot.locale, reason=reason, **variables)

    @staticmethod
    def _classify(error: WeChatClientException) -> Outcome:
        code = error.errcode
        if code is None:
            status = getattr(getattr(error, "response", None), "status_code", None)
            if status is None or status >= 500 or status == 429:
                return Outcome("retry", error=f"HTTP {status}" if status else f"network: {error.errmsg}",
                               answered=False)
            return Outcome("failed", error=f"HTTP {status}", answered=False)
        if code in CONFIG_ERRORS:
            return Outcome("paused", error=f"{code} {error.errmsg}")
        if code == FREQUENCY_LIMITED:
            return Outcome("retry", error=f"{code} {error.errmsg}", retry_after=timedelta(minutes=1))
        if code in TRANSIENT_ERRORS or code in TOKEN_ERRORS:
            return Outcome("retry", error=f"{code} {error.errmsg}")
        return Outcome("failed", error=f"{code} {error.errmsg}")


def _network_failure(error: requests.RequestException) -> Outcome:
    return Outcome("retry", error=f"network: {type(error).__name__}", answered=False)
