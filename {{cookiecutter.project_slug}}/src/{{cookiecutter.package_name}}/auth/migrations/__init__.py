"""Alembic migrations of the auth tables: `uv run alembic upgrade head` applies them."""
