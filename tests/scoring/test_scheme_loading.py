"""bot/config/schemes.py: a scheme from a file path or a preset name, typed errors when it cannot be used."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.schemes import SchemeLoadError, load_scheme, read_scheme_source
from scoring import preset_text


def test_a_preset_by_name_and_a_file_by_path(tmp_path: Path) -> None:
    assert load_scheme("seed-manager").key == "seed-manager"
    path = tmp_path / "mine.toml"
    path.write_text(preset_text("startup-community").replace('key = "startup-community"', 'key = "mine"'),
                    encoding="utf-8")
    assert load_scheme(str(path)).key == "mine"
    assert read_scheme_source(str(path)).kind == "file"


def test_an_existing_file_wins_over_a_preset_of_the_same_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("seed-manager").write_text(preset_text("seed-executor"), encoding="utf-8")
    assert load_scheme("seed-manager").key == "seed-executor"


@pytest.mark.parametrize("source, code", [
    ("nowhere/scheme.toml", "scheme.file_not_found"),
    ("scheme.toml", "scheme.file_not_found"),
    ("seed-director", "scheme.unknown_preset"),
])
def test_what_cannot_be_found(source: str, code: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SchemeLoadError) as caught:
        load_scheme(source)
    assert caught.value.code == code


def test_an_invalid_scheme_carries_its_errors_but_warnings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    # response_time 10 → 11: 101 in all (an error); performance 71 is still inside 70-80; 11 is outside the
    # library range 5-10, which is only a warning
    path.write_text(preset_text("seed-executor").replace("weight = 10\nweight_range = [5, 10]\ncycle = \"month\"",
                                                         "weight = 11\nweight_range = [5, 10]\ncycle = \"month\""),
                    encoding="utf-8")
    with pytest.raises(SchemeLoadError) as caught:
        load_scheme(str(path))
    assert caught.value.code == "scheme.invalid"
    assert {p.code for p in caught.value.problems} == {"weights.total"}
    assert all(p.is_error for p in caught.value.problems)  # the range warning is not among the errors
