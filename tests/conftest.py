"""Shared test fixtures: the network guard, one database per supported backend, the running bot and a chat."""
from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.harness"]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # a Unix socket path (the local PostgreSQL/MariaDB socket)
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise AssertionError(f"a test tried to reach the network: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise AssertionError(f"a test tried to reach the network: {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection to a non-loopback address fails the test."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    yield


def database_backends() -> list[str]:
    backends = ["sqlite"]
    if os.environ.get("KPIBOT_TEST_POSTGRES_URL"):
        backends.append("postgresql")
    if os.environ.get("KPIBOT_TEST_MYSQL_URL"):
        backends.append("mysql")
    return backends
