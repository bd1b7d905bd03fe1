"""Redraw docs/sandbox.png, the README's picture of `kpibot sandbox`, with the browser tests' own code.

Run from the repository root with the dev dependencies and Debian's chromium + chromium-driver installed
(Chinese text needs a CJK font, e.g. Debian's fonts-noto-cjk):

    .venv/bin/python docs/make_screenshot.py
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_sandbox_browser import take_screenshot  # noqa: E402 - needs the root on sys.path first


def main() -> int:
    path = take_screenshot(ROOT / "docs" / "sandbox.png")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
