"""Tortoise ORM configuration: one app, "models", whose migrations live in migrations/."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any

import tortoise.backends.sqlite.executor  # noqa: F401 — registers its adapters first, ours below replace them
from tortoise import Tortoise, connections
from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.backends.base.client import TransactionContext, TransactionContextPooled
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.sqlite.client import SqliteTransactionContext
from tortoise.connection import get_connections
from tortoise.exceptions import DBConnectionError, IntegrityError
from tortoise.transactions import in_transaction as _tortoise_transaction

from api.kit import metrics
from api.kit.clock import CITY_TZ
from api.kit.config import Settings
from api.kit.fairpool import HandoffQueue


def _sqlite_datetime(value: dt.datetime) -> str:
    # SQLite keeps datetimes as text and compares them as text: store every aware one in the city's zone with
    # the same layout, so a UTC value and a +08:00 value of the same instant are the same string
    if value.tzinfo is not None:
        value = value.astimezone(CITY_TZ)
    return value.isoformat(" ", timespec="microseconds")


sqlite3.register_adapter(dt.datetime, _sqlite_datetime)

MODEL_MODULES = [
    "models.catalog",
    "models.identity",
    "models.applications",
    "models.feedback",
    "models.notifications",
    "models.wechat",
    "models.licences",
    "models.apikeys",
]


__all__ = ["DBConnectionError", "IntegrityError", "after_commit", "in_transaction"]

# the callbacks to run once the transaction of this task commits (None: not in a transaction)
_after_commit: ContextVar[list[Callable[[], Awaitable[None]]] | None] = ContextVar(
    "ywt_after_commit", default=None
)


@asynccontextmanager
async def in_transaction() -> AsyncIterator[Any]:
    """One database transaction: `async with in_transaction():` commits at the end, rolls back on error.

    Services own their transactions through this; only this module and models/ import tortoise. What the
    transaction registered with `after_commit` runs once it has committed, never after a rollback."""
    outer = _after_commit.get()
    if outer is not None:  # nested: a savepoint; its callbacks wait for the outermost commit
        async with _tortoise_transaction() as connection:
            yield connection
        return
    callbacks: list[Callable[[], Awaitable[None]]] = []
    token = _after_commit.set(callbacks)
    try:
        async with _cancel_safe(_tortoise_transaction()) as connection:
            yield connection
    finally:
        _after_commit.reset(token)
    for callback in callbacks:
        await callback()


class _SqliteTransaction(SqliteTransactionContext):
    """tortoise's SQLite transaction, begun so that a cancellation cannot wedge the database.

    tortoise (1.1.9) takes the connection's one lock and then awaits BEGIN; cancelled in that await (a
    request cut off, a worker's pass cut short at shutdown) its `__aexit__` never runs, the lock is never
    given back, and every later query of the process waits on it for ever: the embedded server stops
    answering. Here whatever the entry took is given back when it fails, and a BEGIN that still ran in
    aiosqlite's thread after its await was cancelled is rolled back."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                with contextlib.suppress(Exception):
                    await self.connection._connection.rollback()
                raise
        except BaseException:
            self._trxlock.release()
            raise
        return self.connection


class _PooledTransaction(TransactionContextPooled):
    """tortoise's PostgreSQL transaction, begun so that a cancellation in BEGIN gives its connection back to
    the pool (tortoise 1.1.9 kept it: one connection fewer for the process at each such cancellation); the
    pool resets a connection given back inside a transaction (`_reset_if_needed`)."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        await self.ensure_connection()
        pool = self.client._parent._pool
        self.client._connection = await pool.acquire()
        try:
            self.token = get_connections().set(self.connection_name, self.client)
            try:
                await self.client.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            await pool.release(self.client._connection)
            raise
        return self.client


def _cancel_safe(context: TransactionContext) -> TransactionContext:
    """The same transaction, with an entry a cancellation cannot leave half done (the two above)."""
    if type(context) is SqliteTransactionContext:
        return _SqliteTransaction(context.connection, context._trxlock)
    if type(context) is TransactionContextPooled:
        return _PooledTransaction(context.client, context._pool_init_lock)
    return context


async def after_commit(callback: Callable[[], Awaitable[None]]) -> None:
    """Run `callback` once the current transaction has committed; at once when there is none (the write
    before this call was committed on its own)."""
    pending = _after_commit.get()
    if pending is None:
        await callback()
    else:
        pending.append(callback)


async def _reset_if_needed(connection: Any) -> None:
    """What asyncpg does to a connection going back to its pool, only when there is something to undo.

    Its default (`Connection.reset`: unlock advisory locks, close cursors, unlisten, RESET ALL, roll back)
    is one more round trip to the server after every statement run outside a transaction. We take no
    advisory locks, open no cursors outside transactions, never LISTEN and never SET: only a connection
    given back inside a transaction (a request cut off mid-way) needs resetting."""
    if connection.is_in_transaction():
        await connection.reset()


class FairAsyncpgClient(AsyncpgDBClient):
    """tortoise's asyncpg client, its pool's idle connections in a `HandoffQueue` (api/kit/fairpool.py: a
    connection given back goes to the request that has waited longest). tortoise takes it from this module's
    `client_class`, this module being the `engine` of a PostgreSQL connection."""

    async def create_pool(self, **kwargs: Any) -> Any:
        pool = await super().create_pool(**kwargs)
        # once the pool is set up, before anyone can wait on it
        pool._queue = HandoffQueue.taking_over(pool._queue)
        return pool


client_class = FairAsyncpgClient


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.database_url
    connection: str | dict[str, Any] = url
    if url.startswith(("postgres://", "postgresql://")):
        url = "asyncpg://" + url.split("://", 1)[1]
        sep = "&" if "?" in url else "?"
        if "maxsize=" not in url:
            url += f"{sep}minsize=1&maxsize={settings.database.pool_max}"
        connection = expand_db_url(url)
        connection["engine"] = __name__  # FairAsyncpgClient, below
        connection["credentials"]["reset"] = _reset_if_needed
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "migrations": "migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "Asia/Shanghai",
    }


async def open_database(settings: Settings) -> None:
    if settings.database_url.startswith("sqlite://"):
        from pathlib import Path

        Path(settings.database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    # connect now, not on the first request: a request cancelled (client gone) while the lazy connection
    # is being opened leaves aiosqlite without its worker thread, and every later query would hang
    await ping_database()


async def close_database() -> None:
    await Tortoise.close_connections()


async def ping_database() -> None:
    """Raise if the database does not answer a trivial query."""
    await connections.get("default").execute_query("SELECT 1")


# the client methods every statement goes through (execute_query_dict_with_affected calls execute_query)
_EXECUTE = ("execute_query", "execute_insert", "execute_many", "execute_query_dict", "execute_script")
_TIMED: set[Callable[..., Awaitable[Any]]] = set()  # the wrappers: a method is wrapped once


def _timed(method: Callable[..., Awaitable[Any]], script: bool) -> Callable[..., Awaitable[Any]]:
    @wraps(method)
    async def timed(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(self, query, *args, **kwargs)
        finally:
            metrics.observe_db("script" if script else metrics.sql_kind(query), time.perf_counter() - started)

    _TIMED.add(timed)
    return timed


def instrument_database() -> None:
    """Time every statement (api.kit.metrics) of the server's database, once per process.

    tortoise has no query hook; every statement of a model or of models/ goes through one of the execute_*
    methods of the default connection's client class, or of its transaction wrapper (a subclass, which is
    the connection inside `in_transaction()`). Those methods are wrapped in place, on the classes that define
    them, from the client class's own backend module down to its subclasses: one perf_counter pair and one
    histogram observation per statement. Called by the server at start (not by the CLI: a migration or a
    seed is no traffic)."""
    client_class = type(connections.get("default"))
    classes = [cls for cls in client_class.__mro__ if cls.__module__.startswith("tortoise.backends.")]
    classes = [cls for cls in classes if not cls.__module__.startswith("tortoise.backends.base.")]
    pending = list(client_class.__subclasses__())
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    for cls in classes:
        for name in _EXECUTE:
            method = cls.__dict__.get(name)
            if method is not None and method not in _TIMED:
                setattr(cls, name, _timed(method, script=name == "execute_script"))


async def migrate(settings: Settings) -> None:
    """Apply every migration in migrations/ (what `make migrate` and `make run` do)."""
    from tortoise.migrations.api import migrate as run_migrations

    if settings.database_url.startswith("sqlite://"):
        from pathlib import Path

        Path(settings.database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    await run_migrations(config=tortoise_config(settings))
    await Tortoise.close_connections()


def __getattr__(name: str) -> Any:
    # `tortoise makemigrations` reads TORTOISE_ORM=api.kit.db.TORTOISE_ORM; built on demand, never at import
    if name == "TORTOISE_ORM":
        from api.kit.config import load_settings

        return tortoise_config(load_settings())
    raise AttributeError(name)
