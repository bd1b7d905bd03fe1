"""Alembic migrations for kpibot's schema (run with `kpibot db upgrade`)."""
