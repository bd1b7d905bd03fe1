"""The WeCom API client: wechatpy's enterprise client aimed at a configurable host, with a shared, locked token."""
from __future__ import annotations

import logging
import threading
import time as _time
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot.clock import Clock
from bot.config import WeComConfig
from bot.storage.db import transaction
from bot.storage.leases import release_lease, take_lease
from bot.storage.models import CachedToken

log = logging.getLogger(__name__)

# WeCom's days (its statistics, the app's daily sending volume) are China's, whatever zone the bot runs in.
WECOM_ZONE = ZoneInfo("Asia/Shanghai")
# Refresh a little before WeCom's 7200 s so a token never expires mid-request.
TOKEN_SAFETY_MARGIN = timedelta(minutes=5)
REFRESH_LEASE = "wecom-token-refresh"
# gettoken answers that no retry can fix until an admin changes the app (wrong secret, wrong corpid, IP not
# trusted, secret or corpid missing, app disabled). Repeating them gets the server's IP blocked for an hour.
CONFIG_ERRORS = frozenset({40001, 40013, 40056, 41002, 41004, 48002, 50003, 60020, 301002})
# A gettoken refused for one of those is not asked again for this long, by any process.
REFUSAL_MEMORY = timedelta(seconds=50)
# A token WeCom rejected (expired, or replaced by another process's refresh); 41001, no token at all, can only be
# our bug and is handled the same: worth one call with a fresh token.
TOKEN_ERRORS = frozenset({40014, 42001, 41001})


def token_lifetime(expires_in: int | None) -> timedelta:
    """How long to keep a token WeCom says lives `expires_in` seconds: a little less, never nothing.

    The margin is at most half the lifetime, so a short-lived token is still used for a while instead of
    being stored already expired (which once made the sender go out with no token at all)."""
    seconds = 7200 if expires_in is None else max(int(expires_in), 0)
    margin = min(TOKEN_SAFETY_MARGIN, timedelta(seconds=seconds // 2))
    return timedelta(seconds=seconds) - margin


class DatabaseTokenStore:
    """wechatpy's session-storage contract (get/set/delete) over the cached_tokens table.

    Every process of a deployment reads the same row, so one refresh serves them all; a small
    in-memory copy avoids a query per API call.
    """

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._memory: dict[str, tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        now = self._clock.now()
        with self._lock:
            cached = self._memory.get(key)
        if cached and cached[1] > now:
            return cached[0]
        with transaction(self._sessions) as session:
            row = session.get(CachedToken, key)
            if row is None or row.value is None or row.expires_at is None or row.expires_at <= now:
                return default
            with self._lock:
                self._memory[key] = (row.value, row.expires_at)
            return row.value

    def set(self, key: str, value: str, ttl: int | None = None) -> None:
        self.set_until(key, value, self._clock.now() + token_lifetime(ttl))

    def set_until(self, key: str, value: str, expires_at: datetime) -> None:
        """Store a value until an exact moment (the memory of a refused gettoken)."""
        with transaction(self._sessions) as session:
            row = session.get(CachedToken, key)
            if row is None:
                session.add(CachedToken(key=key, value=value, expires_at=expires_at))
            else:
                row.value, row.expires_at = value, expires_at
        with self._lock:
            self._memory[key] = (value, expires_at)

    def delete(self, key: str) -> None:
        with transaction(self._sessions) as session:
            session.execute(delete(CachedToken).where(CachedToken.key == key))
        with self._lock:
            self._memory.pop(key, None)

    def invalidate(self, key: str, stale_value: str | None) -> None:
        """Forget a token WeCom rejected, unless another process already replaced it."""
        with self._lock:
            self._memory.pop(key, None)
        with transaction(self._sessions) as session:
            session.execute(delete(CachedToken).where(CachedToken.key == key, CachedToken.value == stale_value))


class WeComClient(WeChatClient):
    """wechatpy 1.8.18's client with the base URL from config (the real API or the fake), timeouts on,
    `auto_retry` off (its retry has no limit), and one token refresh at a time across threads and processes."""

    def __init__(self, config: WeComConfig, session_factory: sessionmaker[Session], clock: Clock) -> None:
        self.token_store = DatabaseTokenStore(session_factory, clock)
        super().__init__(config.corp_id, config.secret.reveal(), session=self.token_store,
                         timeout=config.request_timeout, auto_retry=False)
        self.API_BASE_URL = config.api_base_url
        self.agent_id = config.agent_id
        self._sessions = session_factory
        self._clock = clock
        self._refresh_lock = threading.Lock()
        self._holder = f"{uuid.uuid4().hex[:12]}"
        # requests would read ~/.netrc and the proxy variables on every call (a file system walk
        # per message); read the proxies once instead and keep them.
        self._http.proxies = requests.utils.get_environ_proxies(config.api_base_url)
        self._http.trust_env = False

    def __repr__(self) -> str:  # the secret must not leak through a repr
        return f"WeComClient(corp_id={self.corp_id!r}, base={self.API_BASE_URL!r})"

    @property
    def access_token_key(self) -> str:
        return f"{self.corp_id}:{self.agent_id}:access_token"

    @property
    def refusal_key(self) -> str:
        return f"{self.corp_id}:{self.agent_id}:gettoken_refused"

    @property
    def access_token(self) -> str:
        token = self.token_store.get(self.access_token_key)
        if token:
            return token
        with self._refresh_lock:
            token = self.token_store.get(self.access_token_key)
            if token:
                return token
            self._raise_recent_refusal()
            return self._refresh_across_processes()

    def _raise_recent_refusal(self) -> None:
        """Answer with gettoken's recent configuration refusal instead of asking WeCom again."""
        refusal = self.token_store.get(self.refusal_key)
        if refusal:
            code, _, message = refusal.partition(" ")
            raise WeChatClientException(int(code), message, client=self)

    def _refresh_across_processes(self) -> str:
        deadline = _time.monotonic() + 2 * self.timeout
        while True:
            if self._take_refresh_lease():
                try:
                    token = self.token_store.get(self.access_token_key)
                    if token:
                        return token
                    self._raise_recent_refusal()  # another process may have just been refused
                    # The token itself, not a re-read of the store: a short-lived one may already be
                    # past its keeping time there, and a missing token must never go out as "none".
                    token = self.fetch_access_token().get("access_token")
                    if not token:
                        raise WeChatClientException(errcode=None, errmsg="gettoken answered no access_token",
                                                    client=self)
                    return str(token)
                finally:
                    self._release_refresh_lease()
            # Another process is refreshing: its token lands in the shared table shortly.
            token = self.token_store.get(self.access_token_key)
            if token:
                return token
            if _time.monotonic() > deadline:
                raise WeChatClientException(errcode=None, errmsg="access token refresh timed out", client=self)
            _time.sleep(0.05)

    def _take_refresh_lease(self) -> bool:
        with transaction(self._sessions) as session:
            return take_lease(session, REFRESH_LEASE, self._holder, self._clock.now(), timedelta(seconds=30))

    def _release_refresh_lease(self) -> None:
        with transaction(self._sessions) as session:
            release_lease(session, REFRESH_LEASE, self._holder)

    def fetch_access_token(self) -> dict[str, Any]:
        # wechatpy hard-codes WeCom's host and sends no timeout here; both must follow config.
        response = self._http.get(self.API_BASE_URL + "gettoken", timeout=self.timeout,
                                  params={"corpid": self.corp_id, "corpsecret": self.secret})
        try:
            response.raise_for_status()
        except requests.RequestException as error:
            raise WeChatClientException(errcode=None, errmsg=f"HTTP {response.status_code}", client=self,
                                        request=error.request, response=error.response) from None
        result = response.json()
        if result.get("errcode", 0) != 0:
            if result["errcode"] in CONFIG_ERRORS:
                self.token_store.set_until(self.refusal_key, f"{result['errcode']} {result.get('errmsg', '')}",
                                           self._clock.now() + REFUSAL_MEMORY)
            raise WeChatClientException(result["errcode"], result.get("errmsg", ""), client=self, response=response)
        self.token_store.set(self.access_token_key, result["access_token"], int(result.get("expires_in", 7200)))
        self.token_store.delete(self.refusal_key)
        log.info("fetched a new WeCom access token")
        return result

    def call(self, path: str, *, params: dict[str, Any] | None = None, data: dict[str, Any] | None = None
             ) -> dict[str, Any]:
        """One API call with the shared token: a POST of `data` when given, else a GET. A token WeCom rejects
        is forgotten and the call made once more with a fresh one, never in a loop; every other error (and a
        second rejection) is the caller's to classify."""
        refreshed = False
        while True:
            token = None
            try:
                token = self.access_token
                query = {**(params or {}), "access_token": token}
                return self.get(path, params=query) if data is None else self.post(path, params=query, data=data)
            except WeChatClientException as error:
                if error.errcode in TOKEN_ERRORS and not refreshed:
                    self.forget_token(token)
                    refreshed = True
                    continue
                raise

    def forget_token(self, stale: str | None) -> None:
        self.token_store.invalidate(self.access_token_key, stale)

    def current_token(self) -> str | None:
        return self.token_store.get(self.access_token_key)
