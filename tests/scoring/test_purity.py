"""The engine stays pure: no imports of the bot, storage, transport or templating, no clock, no open()."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCORING = Path(__file__).resolve().parents[2] / "scoring"
FORBIDDEN_MODULES = {"sqlalchemy", "wechatpy", "jinja2", "flask", "bot", "handlers", "requests", "urllib",
                     "socket", "http", "subprocess", "time"}
FORBIDDEN_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("time", "time")}

MODULES = sorted(SCORING.rglob("*.py"))


def violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open":
                found.append("open(")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if (func.value.id, func.attr) in FORBIDDEN_CALLS:
                    found.append(f"{func.value.id}.{func.attr}(")
            if isinstance(func, ast.Attribute) and (
                    isinstance(func.value, ast.Attribute) and (func.value.attr, func.attr) in FORBIDDEN_CALLS):
                found.append(f"{func.value.attr}.{func.attr}(")
    return found


def test_the_checker_catches_what_it_forbids() -> None:
    bad = "import sqlalchemy\nfrom bot.cli.main import main\nimport jinja2.sandbox\nopen('x')\n" \
          "import datetime\ndatetime.datetime.now()\nfrom datetime import date\ndate.today()\n"
    assert violations(bad) == ["sqlalchemy", "bot.cli.main", "jinja2.sandbox", "open(", "datetime.now(", "date.today("]
    assert violations("from decimal import Decimal\nfrom scoring.rules import x\n") == []


def test_there_are_modules_to_check() -> None:
    assert {path.name for path in MODULES} >= {"__init__.py", "results.py", "rules.py", "scheme.py", "validation.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_scoring_module_is_pure(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_every_module_says_what_it_owns(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and docstring.strip()
