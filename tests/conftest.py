"""Shared test fixtures: the network guard, one database per supported backend, the running bot and a chat, and
the `steps` marker for a story told as a class of steps."""
from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.harness", "tests.sandbox_harness"]

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


# -- a story in steps ------------------------------------------------------------------------------------------
# A long story is a class marked `steps`: each test method is one step, sharing a class-scoped env. When a step
# fails, the later steps of that story (same class, same backend) are marked xfail instead of failing in a heap,
# so the report names the step that broke.
_failed_step: dict[tuple[str, str], str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "steps: the test methods of this class are the steps of one story")


def _story(item: pytest.Item) -> tuple[str, str]:
    callspec = getattr(item, "callspec", None)
    return item.parent.nodeid if item.parent else "", callspec.id if callspec else ""


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("steps") and (failed := _failed_step.get(_story(item))):
        pytest.xfail(f"an earlier step failed: {failed}")


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    if item.get_closest_marker("steps") and call.excinfo is not None and not call.excinfo.errisinstance(
            pytest.xfail.Exception):
        _failed_step.setdefault(_story(item), item.name)
