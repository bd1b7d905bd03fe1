"""`kpibot sandbox`: the whole bot with the built-in fake WeCom and a WeCom-like page, on this machine only."""
from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any

from bot.cli.support import CliError, help_text
from bot.templates import render

DEFAULT_PORT = 8000
DEFAULT_DATA_DIR = "sandbox-data"  # in the current directory; .gitignore'd in this repository


def _log_to(data_dir: Path) -> None:
    """Details go to sandbox.log in the data dir; the terminal keeps the banner and real warnings."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(data_dir / "sandbox.log", encoding="utf-8")
    except OSError:
        return  # start_sandbox reports the unwritable data dir in one clear line
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file)


def _open_browser(url: str) -> bool:
    """Open the page in the default graphical browser. Without a display, Python's webbrowser would
    fall back to a console browser (lynx, w3m) that takes over this terminal, so do nothing there."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def cmd_sandbox(args: argparse.Namespace) -> int:
    # The sandbox runs the whole app: loading it costs about 500 ms at every `kpibot` command, `--help` included,
    # were it imported at the top.
    from bot.sandbox.server import SandboxStartError, start_sandbox

    data_dir = Path(args.data)
    _log_to(data_dir)
    try:
        sandbox = start_sandbox(port=args.port, data_dir=data_dir)
    except SandboxStartError as error:
        raise CliError(error.message(), 2) from None
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        print(sandbox.banner(), flush=True)
        if not args.no_browser and not _open_browser(sandbox.url):
            print(render("sandbox/no_browser.txt.j2", url=sandbox.url), flush=True)
        stopped.wait()
    finally:
        sandbox.stop()
    return 0


def add_parsers(subparsers: Any) -> None:
    text = functools.partial(help_text, "sandbox")
    sandbox = subparsers.add_parser("sandbox", help=text("sandbox"), description=text("sandbox.description"))
    sandbox.add_argument("--port", type=int, default=DEFAULT_PORT, help=text("sandbox.--port", default=DEFAULT_PORT))
    sandbox.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR",
                         help=text("sandbox.--data", default=DEFAULT_DATA_DIR))
    sandbox.add_argument("--no-browser", action="store_true", help=text("sandbox.--no-browser"))
    sandbox.set_defaults(func=cmd_sandbox)
