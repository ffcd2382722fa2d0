"""The user database: one async engine per process, SQLite by default, PostgreSQL in production."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import event, make_url, select
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool

from {{ cookiecutter.package_name }}.auth.config import AuthSettings
from {{ cookiecutter.package_name }}.auth.models import User
from {{ cookiecutter.package_name }}.errors import error_response

# What a caller is told to wait before trying again while the database is unreachable.
DATABASE_RETRY_AFTER_SECONDS = 5
# Options SQLAlchemy's asyncpg dialect reads from the URL for itself, not asyncpg's.
_DIALECT_OPTIONS = (
    "async_creator_fn",
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
)

logger = logging.getLogger(__name__)


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """The engine of `url`, keeping `pool_size` connections open. A statement that finds them
    all busy waits for one (up to the pool's 30 s, then the service answers 503) rather than
    opening another for a moment: on PostgreSQL a new connection costs more than the many
    statements that run on a pooled one meanwhile."""
    if make_url(url).get_backend_name() == "sqlite":
        # SQLite lets one writer in at a time, and a writer that has to wait sleeps in its busy
        # handler, in steps of up to 100 ms: on one connection the process's statements take
        # turns in the pool's queue instead.
        pool_size = 1
    engine = create_async_engine(
        url, poolclass=AsyncAdaptedQueuePool, pool_size=pool_size, max_overflow=0
    )
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
    if engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(connection: Any, record: Any, proxy: Any) -> None:
    # A pooled connection the server or the network closed (a restart, a failover) is swapped
    # for a new one before use. SQLAlchemy's pool_pre_ping would ask the server instead, with
    # two round trips (BEGIN; ROLLBACK) per checkout: more than a quota statement costs.
    if connection.driver_connection.is_closed():
        raise DisconnectionError("the connection was closed")


def _tune_sqlite(connection: Any, record: Any) -> None:
    # WAL lets readers work while a writer commits; the busy timeout makes concurrent
    # writers (several workers, parallel queries) wait for the lock instead of failing.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL stays consistent after a crash and skips a sync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


@asynccontextmanager
async def open_database(settings: AuthSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    try:
        if not await database_answers(engine):
            # Not fatal: the readiness check reports it until the database is ready.
            logger.error(
                "user database unreachable or not migrated; run `uv run alembic upgrade head`"
            )
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_statement_pool(
    database: AsyncEngine, size: int
) -> AsyncIterator["asyncpg.Pool[Any] | None"]:
    """On PostgreSQL, an asyncpg pool of up to `size` connections to the user database, for the
    statements the query path runs on every query (the quota's); None on another database.

    Through SQLAlchemy's pool each statement cost about twice the CPU: its checkout and
    check-in switch greenlets and run its events. Connections open as they are needed, so a
    database that is down at start-up leaves the service up, as the engine does."""
    if database.dialect.driver != "asyncpg":
        yield None
        return
    _, options = database.dialect.create_connect_args(database.url)
    for option in _DIALECT_OPTIONS:
        options.pop(option, None)
    pool = await asyncpg.create_pool(
        min_size=0, max_size=size, reset=_keep_session_state, **options
    )
    try:
        yield pool
    finally:
        await pool.close()


async def _keep_session_state(connection: "asyncpg.Connection[Any]") -> None:
    """The pool's reset of a connection it takes back: nothing to do. By default asyncpg resets
    the session (advisory locks, cursors, LISTEN, settings) with a query of its own, a round
    trip per statement that doubled the quota's; the quota's statements change none of that
    state. A transaction left open is still rolled back."""


def sessions_for(database: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """ORM sessions of the user database; what they load stays readable after a commit."""
    return async_sessionmaker(database, expire_on_commit=False)


@asynccontextmanager
async def open_database_probe(
    settings: AuthSettings,
) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """The readiness check of the user database, on a connection of its own.

    Not through the request pool: when the service is busy every pooled connection is in use,
    and a probe waiting behind the requests would time out and report a database that answers
    as down, taking the service out of its load balancer just when it has work. Probes that
    arrive while one is asking share its answer: however often readiness is asked, one query
    on one connection at most is busy with it.
    """
    engine = create_engine(settings.database_url, pool_size=1)
    asking: asyncio.Task[bool] | None = None

    async def probe() -> bool:
        nonlocal asking
        if asking is None or asking.done():
            asking = asyncio.create_task(database_answers(engine))
        # Shielded: a caller that gives up does not cancel the answer the others wait for.
        return await asyncio.shield(asking)

    try:
        yield probe
    finally:
        if asking is not None and not asking.done():
            asking.cancel()
            with suppress(asyncio.CancelledError):
                await asking
        await engine.dispose()


async def database_answers(database: AsyncEngine) -> bool:
    """True when the database is reachable and migrated (its users table answers)."""
    try:
        async with database.connect() as connection:
            await connection.execute(select(User.id).limit(1))
    except Exception as exc:  # a probe answers, whatever went wrong
        logger.warning("user database check failed", extra={"error": repr(exc)})
        return False
    return True


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Connection failures (server down, file unreadable, pool exhausted): the service is
    # unavailable, not broken. The driver's message may name hosts, so it stays in the log.
    logger.error("user database unavailable", extra={"error": repr(exc)})
    return error_response(
        503,
        "The user database is unavailable",
        "database_unavailable",
        {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def install_database_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    # Every pooled connection busy for longer than the pool waits for one.
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    # asyncpg's refused connections reach the app unwrapped. PRSM and Redis errors never do
    # (their clients map them), so a bare ConnectionError here is the database's.
    app.add_exception_handler(ConnectionError, _database_unavailable)
