"""Loading appraisal schemes at the edge: a TOML file path or the name of a preset shipped with scoring."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scoring import Problem, Scheme, check_scheme, preset_names, preset_text
from scoring.problems import errors


class SchemeLoadError(Exception):
    """A scheme that cannot be read or used. `code` and `params` let the edge render the message;
    `problems` holds the scheme's problems when it was read but is invalid."""

    def __init__(self, code: str, message: str, problems: tuple[Problem, ...] = (), **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = params
        self.problems = problems


@dataclass(frozen=True, slots=True)
class SchemeSource:
    """Where a scheme came from ("preset" or "file"), its name or path, and its TOML text."""

    kind: str
    name: str
    text: str


def read_scheme_source(file_or_preset: str) -> SchemeSource:
    """An existing file wins over a preset of the same name; anything that looks like a path is a file."""
    path = Path(file_or_preset)
    if path.is_file():
        try:
            return SchemeSource("file", str(path), path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemeLoadError("scheme.unreadable", f"cannot read {path}: {exc}", path=str(path),
                                  detail=str(exc)) from exc
    if file_or_preset in preset_names():
        return SchemeSource("preset", file_or_preset, preset_text(file_or_preset))
    if path.suffix or "/" in file_or_preset or "\\" in file_or_preset or path.exists():
        raise SchemeLoadError("scheme.file_not_found", f"no scheme file {path}", path=str(path))
    raise SchemeLoadError("scheme.unknown_preset", f"no preset named {file_or_preset!r}",
                          name=file_or_preset, presets=", ".join(preset_names()))


def check_scheme_source(file_or_preset: str) -> tuple[SchemeSource, Scheme | None, list[Problem]]:
    """Read and check a scheme without raising on its problems (for `kpibot scheme check`)."""
    source = read_scheme_source(file_or_preset)
    scheme, problems = check_scheme(source.text)
    return source, scheme, problems


def load_scheme(file_or_preset: str) -> Scheme:
    """A usable scheme from a file path or preset name; raises SchemeLoadError when it cannot be read or has
    errors (warnings are accepted)."""
    source, scheme, problems = check_scheme_source(file_or_preset)
    if scheme is None or errors(problems):
        found = tuple(errors(problems))
        raise SchemeLoadError("scheme.invalid", f"{source.name}: {len(found)} error(s) in the scheme",
                              problems=found, name=source.name, count=len(found))
    return scheme
