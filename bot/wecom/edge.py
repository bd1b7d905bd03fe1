"""The HTTP edge: waitress with the server's limits from config, a per-request deadline, and rejection counts."""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer

from bot.clock import Clock
from bot.config import ServerConfig

log = logging.getLogger(__name__)


class Rejections:
    """Counts every refused request by reason; logs at most one line per reason per interval, with the count.

    A flood of bad requests must not become a flood of log lines (one campaign wrote 9,291), yet the
    operator still learns that, why, and how often."""

    def __init__(self, clock: Clock, log_interval_seconds: float = 60.0) -> None:
        self._clock = clock
        self._interval = log_interval_seconds
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    def reject(self, reason: str, detail: str = "") -> None:
        """Count one refused request; `detail` (never a secret) goes into the log line if one is written."""
        now = self._clock.now().timestamp()
        with self._lock:
            self._counts[reason] += 1
            last = self._last_logged.get(reason)
            if last is not None and now - last < self._interval:
                self._unlogged[reason] += 1
                return
            self._last_logged[reason] = now
            suppressed = self._unlogged.pop(reason, 0)
        more = f" (+{suppressed} more since the last line)" if suppressed else ""
        log.warning("request refused: %s%s%s", reason, f": {detail}" if detail else "", more)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _TimedParser(HTTPRequestParser):
    # waitress's own maintenance clock is time.time(); the deadline is compared against it there.
    def __init__(self, adj: Any) -> None:
        super().__init__(adj)
        self.started_at = time.time()


class _EdgeChannel(HTTPChannel):
    parser_class = _TimedParser
    sent_anything = False

    def received(self, data: bytes) -> bool:
        self.sent_anything = self.sent_anything or bool(data)
        result = super().received(data)
        server = self.server
        for request in self.requests:
            if request.error is not None and not getattr(request, "counted", False):
                request.counted = True
                server.rejections.reject(f"http_{request.error.code}", f"{type(request.error).__name__} from {self.addr[0]}")
        return result


class EdgeServer(TcpWSGIServer):
    """waitress, plus one rule it lacks: a request not fully received within `request_timeout` is dropped.

    channel_timeout only measures silence, so a client trickling a byte every few seconds would keep
    its connection forever; the deadline bounds how long any partial request may hold a slot."""

    channel_class = _EdgeChannel

    def __init__(self, application: Callable[..., Any], *, rejections: Rejections, request_timeout: float,
                 **adjustments: Any) -> None:
        self.rejections = rejections
        self.request_timeout = request_timeout
        super().__init__(application, **adjustments)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = now - self.request_timeout
        for channel in list(self.active_channels.values()):
            if channel.will_close or channel.requests:
                continue
            request = channel.request
            if request is not None and request.started_at < cutoff:
                channel.will_close = True
                self.rejections.reject("request_timeout", f"partial request from {channel.addr[0]}")
            elif request is None and not channel.sent_anything and channel.creation_time < cutoff:
                # Connected and silent: as much a slot held without a request as a trickled one.
                channel.will_close = True
                self.rejections.reject("request_timeout", f"silent connection from {channel.addr[0]}")


def waitress_adjustments(server: ServerConfig) -> dict[str, Any]:
    """The waitress settings that config.example.toml's [server] documents."""
    return {
        "threads": server.threads,
        "connection_limit": server.connection_limit,
        "channel_timeout": server.channel_timeout,
        # How often waitress looks for idle channels and expired deadlines: often enough that the
        # deadline is kept within a second, rare enough to cost nothing with a thousand channels.
        "cleanup_interval": 1,
        "max_request_body_size": server.max_body_bytes,
        "max_request_header_size": server.max_header_bytes,
        # select() cannot watch descriptors above 1023; poll() has no such ceiling.
        "asyncore_use_poll": True,
        "ident": "kpibot",
    }


def create_edge_server(application: Callable[..., Any], server: ServerConfig, rejections: Rejections, *,
                       host: str, port: int) -> EdgeServer:
    return EdgeServer(application, rejections=rejections, request_timeout=server.request_timeout,
                      host=host, port=port, **waitress_adjustments(server))
