"""The wheel built from this checkout holds every file kpibot reads at run time (.ci/wheel-check runs it)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot.templates import render_error

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The file list of one wheel built per test session (a few seconds); the installed setuptools builds it, so
    the test needs no registry."""
    dist = tmp_path_factory.mktemp("dist")
    # setuptools builds in the checkout's build/ and never empties it: a file renamed or removed since an earlier
    # build would still ship (two heads of migrations, say), so every build starts from nothing.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = dist.glob("kpibot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _relative(paths: list[Path]) -> set[str]:
    return {path.relative_to(ROOT).as_posix() for path in paths}


def test_the_wheel_ships_every_template_and_the_example_config(wheel_files: set[str]) -> None:
    templates = _relative(sorted((ROOT / "templates").rglob("*.j2")))
    assert templates and len(templates) > 50
    assert {f"bot/shipped/{name}" for name in templates} <= wheel_files
    assert "bot/shipped/config.example.toml" in wheel_files


def test_the_wheel_ships_static_files_presets_and_migrations(wheel_files: set[str]) -> None:
    expected = _relative([*(ROOT / "bot" / "sandbox" / "static").iterdir(), *(ROOT / "scoring" / "presets").glob("*.toml"),
                          *(ROOT / "bot" / "storage" / "migrations" / "versions").glob("0*.py"),
                          ROOT / "bot" / "storage" / "migrations" / "env.py", ROOT / "bot" / "storage" / "migrations" / "script.py.mako"])
    assert len(expected) > 10
    assert expected <= wheel_files, sorted(expected - wheel_files)


def test_an_error_message_does_not_need_its_template() -> None:
    line = render_error("no/such/template.txt.j2", "sandbox could not start (config_invalid)",
                        reason="bot.locale: no templates")
    assert line.startswith("sandbox could not start (config_invalid): reason=bot.locale: no templates")
    assert "TemplateNotFound" in line
    # A template that renders is used as it is.
    assert render_error("apology.txt.j2", "fallback") != "fallback" and "抱歉" in render_error("apology.txt.j2", "x")
