"""Where the files read at run time live: the installed wheel's bot/shipped/ copy, else the checkout's top level."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# setup.py copies templates/ and config.example.toml here when it builds a wheel; a checkout and an editable
# install have no such folder and read the originals at the top of the repository.
SHIPPED_DIR = PACKAGE_DIR / "shipped"
CHECKOUT_DIR = PACKAGE_DIR.parent


def shipped_path(name: str) -> Path:
    """templates or config.example.toml: the installed copy if this is a wheel install, else the checkout's."""
    installed = SHIPPED_DIR / name
    return installed if installed.exists() else CHECKOUT_DIR / name


TEMPLATES_DIR = shipped_path("templates")
EXAMPLE_CONFIG = shipped_path("config.example.toml")
