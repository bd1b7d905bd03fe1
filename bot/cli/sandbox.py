"""`kpibot sandbox`: the whole bot with the built-in fake WeCom and a WeCom-like page, on this machine only."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any

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
    from bot.cli.main import CliError
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
    sandbox = subparsers.add_parser(
        "sandbox", help="在浏览器里试用整个机器人：内置模拟企业微信、示例组织和仿企业微信页面（仅本机）",
        description="在一个进程里启动内置的模拟企业微信（含示例组织）、真实的机器人和一个仿企业微信的网页，"
                    "只监听 127.0.0.1，不需要企业微信账号，也不访问外网。")
    sandbox.add_argument("--port", type=int, default=DEFAULT_PORT,
                         help=f"页面和回调共用的端口，只监听 127.0.0.1（默认 {DEFAULT_PORT}；0 表示任选空闲端口）")
    sandbox.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR",
                         help=f"沙盒的数据库和对话记录所在目录（默认 ./{DEFAULT_DATA_DIR}；删除即从头开始）")
    sandbox.add_argument("--no-browser", action="store_true", help="不自动打开浏览器")
    sandbox.set_defaults(func=cmd_sandbox)
