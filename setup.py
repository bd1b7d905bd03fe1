"""Build hook: a wheel carries the top-level templates/ and config.example.toml inside the bot package.

Everything else is declared in pyproject.toml. Both files stay at the top of the repository (where people
look for them); the wheel puts copies under bot/shipped/, which bot/shipped_files.py reads when present.
An editable install and a checkout read the top-level originals, so this step skips editable builds.
"""
from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("templates", "config.example.toml")  # relative to the repository root and to bot/shipped/


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "bot" / "shipped"
        for name in SHIPPED:
            source = ROOT / name
            if not source.exists():  # an sdist without them would build a wheel that cannot start
                raise FileNotFoundError(f"{source} is missing: the wheel would ship without it (see MANIFEST.in)")
            if source.is_dir():
                self.copy_tree(str(source), str(target / name))
            else:
                self.mkpath(str(target))
                self.copy_file(str(source), str(target / name))


setup(cmdclass={"build_py": BuildWithShippedFiles})
