"""The migrations, on a database of their own: SQLite, or PostgreSQL when DATABASE_URL says so."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncConnection

from {{ cookiecutter.package_name }}.auth.database import create_engine
from {{ cookiecutter.package_name }}.auth.models import Base
from tests.auth.databases import ScratchDatabase


@pytest.fixture
def database() -> Iterator[ScratchDatabase]:
    database = ScratchDatabase()
    with database.created():
        yield database


@asynccontextmanager
async def _connected(database: ScratchDatabase) -> AsyncIterator[AsyncConnection]:
    engine = create_engine(database.url)
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def _tables(database: ScratchDatabase) -> set[str]:
    async with _connected(database) as connection:
        return await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))


async def _differences(database: ScratchDatabase) -> list[object]:
    """What autogenerate would change: nothing, when the models and the migrations agree."""

    def compare(sync: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(sync), Base.metadata))

    async with _connected(database) as connection:
        return await connection.run_sync(compare)


def test_upgrade_from_empty_to_head_and_downgrade_back(database: ScratchDatabase) -> None:
    """One database for the whole round trip: creating a PostgreSQL database is slow."""
    database.upgrade()

    assert asyncio.run(_tables(database)) == {"alembic_version", "users", "login_failures"}
    assert asyncio.run(_differences(database)) == []

    database.downgrade()

    assert asyncio.run(_tables(database)) == {"alembic_version"}

    # The downgrade left nothing in the way of a new upgrade.
    database.upgrade()

    assert {"users", "login_failures"} <= asyncio.run(_tables(database))
