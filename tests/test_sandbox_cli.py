"""The sandbox across restarts and as `kpibot sandbox` on the command line: its clock, its seed steps, start-up errors,
and its templates."""
from __future__ import annotations

import os
import re
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.jobs import table as schedule
from bot.sandbox.scheduler import SandboxClock
from bot.sandbox.server import SandboxStartError, start_sandbox
from bot.templates import environment, render, template_names
from tests.sandbox_harness import SHANGHAI, START, Api, bot_text

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- restarts and the clock


def test_time_and_the_conversation_survive_a_restart(tmp_path: Path, org_sync_only: list[schedule.JobSpec]) -> None:
    data = tmp_path / "data"
    first = start_sandbox(port=0, data_dir=data, start_at=START)
    try:
        api = Api(first)
        api.post("/sandbox/api/send", {"userid": "lina", "text": "/help"})
        api.wait_for("lina", bot_text("你可以使用以下命令"))
        api.post("/sandbox/api/time/advance", {"hours": 30})
        left_at = first.now()
    finally:
        first.stop()
    second = start_sandbox(port=0, data_dir=data, start_at=START)
    try:
        assert timedelta(0) <= second.now() - left_at < timedelta(minutes=1)
        transcript = Api(second).conversation("lina")
        assert [e["direction"] for e in transcript] == ["to_bot", "from_bot"]
        assert second.scheduler.next_event("org_sync").at == datetime(2026, 11, 29, 2, 40, tzinfo=SHANGHAI)
    finally:
        second.stop()


def test_seed_steps_run_once_per_data_dir_unless_they_fill_the_fake(tmp_path: Path) -> None:
    from bot.sandbox.state import SandboxState
    from bot.sandbox.seed import SeedStep, previous_months, run_seed_steps

    ran: list[str] = []
    history = SeedStep("history", lambda ctx: ran.append("history"))
    fake_data = SeedStep("fake_data", lambda ctx: ran.append("fake_data"), every_start=True)
    state = SandboxState(tmp_path / "state.json")
    context: Any = object()
    assert run_seed_steps(context, state, [fake_data, history]) == ["fake_data", "history"]
    restarted = SandboxState.load(tmp_path / "state.json")
    later = SeedStep("results", lambda ctx: ran.append("results"))  # a flow that landed since
    assert run_seed_steps(context, restarted, [fake_data, history, later]) == ["fake_data", "results"]
    assert ran == ["fake_data", "history", "fake_data", "results"]
    assert SandboxState.load(tmp_path / "state.json").seeded == ["history", "results"]
    assert previous_months(START.date(), 3) == ("2026-08", "2026-09", "2026-10")
    assert previous_months(datetime(2027, 2, 1).date(), 3) == ("2026-11", "2026-12", "2027-01")


def test_the_sandbox_clock_runs_at_real_speed_between_moves() -> None:
    ticks = [100.0]
    clock = SandboxClock(START, monotonic=lambda: ticks[0])
    assert clock.now() == START
    ticks[0] += 90
    assert clock.now() == START + timedelta(seconds=90)
    assert clock.advance(hours=2) == START + timedelta(hours=2, seconds=90)
    ticks[0] += 10
    assert clock.now() == START + timedelta(hours=2, seconds=100)
    clock.set(START)
    assert clock.now() == START
    stopped = SandboxClock(START, running=False, monotonic=lambda: ticks[0])
    ticks[0] += 1000
    assert stopped.now() == START


# ---------------------------------------------------------------- the CLI


class LineReader:
    """Lines of a child's stdout as they come (a thread reads; select() would miss lines already buffered)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen = ""
        assert process.stdout is not None
        stream = process.stdout

        def pump() -> None:
            for line in stream:
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, pattern: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.seen)) is None:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"{pattern!r} never printed; got:\n{self.seen}")
            self.seen += line
        return match.group(0)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_kpibot_sandbox_starts_prints_its_address_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "bot.cli.main", "sandbox", "--port", "0", "--no-browser",
                                "--data", str(tmp_path / "data")], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        output = LineReader(process)
        url = output.until(r"http://127\.0\.0\.1:\d+/")
        output.until("按 Ctrl\\+C 停止")
        http = requests.Session()
        http.trust_env = False
        assert "kpibot 沙盒" in http.get(url, timeout=10).text
        assert len(http.get(url + "sandbox/api/people", timeout=10).json()["people"]) == 11
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (tmp_path / "data" / "kpibot.db").exists()
    assert (tmp_path / "data" / "sandbox-state.json").exists()


def test_a_port_in_use_is_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("sandbox", "--port", str(port), "--no-browser", "--data", str(tmp_path / "data"))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"kpibot: 沙盒无法启动：端口 {port} 已被占用，请用 --port 换一个端口，"
                                     f"例如 kpibot sandbox --port {port + 1}")


def test_an_unwritable_data_dir_is_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli("sandbox", "--no-browser", "--port", "0", "--data", str(blocker / "data"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kpibot: 沙盒无法启动：数据目录 {blocker / 'data'} 无法写入")


def test_start_errors_are_typed(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SandboxStartError) as raised:
        start_sandbox(port=0, data_dir=blocker / "data")
    assert raised.value.code == "data_dir_unwritable"


def test_no_browser_is_opened_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a display webbrowser would start lynx or w3m inside the terminal; the address is printed instead."""
    from bot.cli import sandbox as cli_sandbox

    opened: list[str] = []
    monkeypatch.setattr(cli_sandbox.webbrowser, "open", lambda url: opened.append(url) or True)
    monkeypatch.setattr(cli_sandbox.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli_sandbox._open_browser("http://127.0.0.1:8000/") is False and opened == []
    monkeypatch.setenv("DISPLAY", ":0")
    assert cli_sandbox._open_browser("http://127.0.0.1:8000/") is True and opened == ["http://127.0.0.1:8000/"]


# ---------------------------------------------------------------- templates


SANDBOX_TEMPLATE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("sandbox/bot_name.txt.j2", {}),
    ("sandbox/moment.txt.j2", {"at": START, "style": "long"}),
    ("sandbox/moment.txt.j2", {"at": START, "style": "short"}),
    *[("sandbox/api_error.txt.j2", {"code": code, "userid": "x", "limit": 1, "status": 503, "job_id": "j"})
      for code in ("unknown_person", "empty_text", "text_too_long", "unknown_card", "card_already_handled",
                   "bad_selection", "callback_refused", "bad_hours", "unknown_job", "no_upcoming_event", "bad_cursor",
                   "something_else")],
    *[("sandbox/start_error.txt.j2", {"code": code, "port": 8000, "path": "/x", "reason": "r"})
      for code in ("port_in_use", "port_denied", "port_failed", "data_dir_unwritable", "database_failed",
                   "config_invalid", "other")],
    ("sandbox/no_browser.txt.j2", {"url": "http://127.0.0.1:8000/"}),
    ("sandbox/time_moved.txt.j2", {"before": START, "after": START, "target": None, "ran": [], "failed": []}),
    ("sandbox/banner.txt.j2", {"url": "http://127.0.0.1:8000/", "people": [1, 2], "roles": [("成员", 2)],
                               "organisation": "社群运营部", "now": START, "data_dir": "/x"}),
]


@pytest.mark.parametrize(("name", "variables"), SANDBOX_TEMPLATE_CASES)
def test_sandbox_templates_render_in_chinese(name: str, variables: dict[str, Any]) -> None:
    text = render(name, **variables)
    assert text and re.search(r"[\u4e00-\u9fff]", text), text


def test_the_moment_macro_writes_sandbox_time_the_chinese_way() -> None:
    macros = environment().get_template("sandbox/moment_macro.j2").module
    assert macros.moment(START, "long") == "2026年11月27日 周五 09:00"  # type: ignore[attr-defined]
    assert macros.moment(START + timedelta(days=1, hours=-6, minutes=5)) == "11月28日 周六 03:05"  # type: ignore[attr-defined]


def test_every_sandbox_template_has_a_rendering_case() -> None:
    names = {name for name in template_names() if name.startswith("sandbox/") and name.endswith(".txt.j2")}
    assert names == {name for name, _ in SANDBOX_TEMPLATE_CASES}
