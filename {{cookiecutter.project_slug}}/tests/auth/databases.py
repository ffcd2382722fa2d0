"""Databases of the test run's own, made and dropped by the tests.

SQLite files by default; with DATABASE_URL naming a PostgreSQL server (for example
`postgresql+asyncpg://postgres@127.0.0.1:5432/test`), new databases on that server instead.
Nothing that already exists there is touched.
"""

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import URL, delete, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.auth.database import create_engine
from {{ cookiecutter.package_name }}.auth.models import Base

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


class ScratchDatabase:
    def __init__(self) -> None:
        name = f"test_{secrets.token_hex(6)}"
        server = os.environ.get("DATABASE_URL", "")
        self._server: URL | None = None
        self._files: list[Path] = []
        if server and make_url(server).get_backend_name() == "postgresql":
            self._server = make_url(server)
            self.url = self._server.set(database=name).render_as_string(hide_password=False)
        elif not server or make_url(server).get_backend_name() == "sqlite":
            path = Path(tempfile.gettempdir()) / f"{name}.db"
            self._files = [path, path.with_name(f"{name}.db-wal"), path.with_name(f"{name}.db-shm")]
            self.url = f"sqlite+aiosqlite:///{path}"
        else:
            raise ValueError(f"the tests run on SQLite or PostgreSQL, not {server!r}")

    @property
    def on_postgresql(self) -> bool:
        return self._server is not None

    @contextmanager
    def created(self) -> Iterator[str]:
        """The database, empty, for the duration of the block."""
        if self._server is not None:
            asyncio.run(self._on_server(f'CREATE DATABASE "{self._name}"'))
        try:
            yield self.url
        finally:
            if self._server is not None:
                asyncio.run(self._on_server(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))
            for path in self._files:
                path.unlink(missing_ok=True)

    def upgrade(self, revision: str = "head") -> None:
        command.upgrade(self.alembic_config(), revision)

    def downgrade(self, revision: str = "base") -> None:
        command.downgrade(self.alembic_config(), revision)

    def alembic_config(self) -> Config:
        """The project's own alembic.ini, aimed at this database."""
        config = Config(ALEMBIC_INI)
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        config.attributes["configure_logging"] = False
        return config

    async def empty(self) -> None:
        """Deletes every row, so that each test starts from no users and no failed logins."""
        engine = create_engine(self.url)
        try:
            async with engine.begin() as connection:
                for table in reversed(Base.metadata.sorted_tables):
                    await connection.execute(delete(table))
        finally:
            await engine.dispose()

    @property
    def _name(self) -> str:
        return make_url(self.url).database or ""

    async def _on_server(self, statement: str) -> None:
        assert self._server is not None
        engine = create_async_engine(self._server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        except (OSError, SQLAlchemyError) as exc:
            where = self._server.render_as_string(hide_password=True)
            pytest.fail(
                f"the tests need PostgreSQL at {where} (DATABASE_URL): {exc}", pytrace=False
            )
        finally:
            await engine.dispose()


# The database every test of this run works in (see the fixtures in tests/conftest.py).
TEST_DATABASE = ScratchDatabase()
