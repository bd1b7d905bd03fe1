"""The application package: its folders are its layers (README "Layout"; pyproject.toml's import contracts)."""
