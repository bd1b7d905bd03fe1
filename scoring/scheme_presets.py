"""The schemes shipped with kpibot (scoring/presets/*.toml, package data), as TOML text by name."""
from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


class UnknownPresetError(KeyError):
    """No preset has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def preset_names() -> tuple[str, ...]:
    """Every shipped preset, sorted: e.g. ("mature-community", "seed-executor", ...)."""
    files = _presets_folder().iterdir()
    return tuple(sorted(entry.name.removesuffix(".toml") for entry in files if entry.name.endswith(".toml")))


def preset_text(name: str) -> str:
    """The TOML text of one preset."""
    if name not in preset_names():
        raise UnknownPresetError(name)
    return _presets_folder().joinpath(f"{name}.toml").read_text(encoding="utf-8")


def _presets_folder() -> Traversable:
    # scoring/presets holds data only (no __init__.py), matching pyproject's package-data entry.
    return resources.files("scoring").joinpath("presets")
