"""Databases of the test run's own, made and dropped by the tests.

SQLite files by default; with DATABASE_URL naming a PostgreSQL server (for example
`postgresql+asyncpg://postgres@127.0.0.1:5432/test`), new databases on that server instead.
Nothing that already exists there is touched.
"""

import asyncio
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import URL, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

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
        """Deletes every row, so that each test starts from no users and no failed logins.

        Straight through the driver, in one transaction: this runs before every test, and an
        engine made and disposed of each time cost more than the statements."""
        tables = reversed(Base.metadata.sorted_tables)
        statements = [f'DELETE FROM "{table.name}"' for table in tables]  # noqa: S608
        if self._server is not None:
            await self._run_on_postgresql(statements)
        else:
            self._run_on_sqlite(statements)

    async def _run_on_postgresql(self, statements: list[str]) -> None:
        url = make_url(self.url).set(drivername="postgresql")
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            await connection.execute("; ".join(statements))
        finally:
            await connection.close()

    def _run_on_sqlite(self, statements: list[str]) -> None:
        with closing(sqlite3.connect(self._files[0])) as connection:
            # Not waiting for the disk to confirm the commit: about 9 ms per test less, and a
            # scratch database lost in a crash is dropped anyway.
            connection.execute("PRAGMA synchronous=OFF")
            with connection:
                for statement in statements:
                    connection.execute(statement)

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
