"""Alembic migrations; run them with `nalgae db upgrade` (see storage/migrate.py)."""
