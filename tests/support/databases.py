"""A database of a test's own for servers the test starts: this run's PostgreSQL (a database created next to
YWT_TEST_DATABASE_URL's and dropped afterwards) when it is set, else a SQLite file in the test's folder."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_URL = os.environ.get("YWT_TEST_DATABASE_URL")


async def pg_execute(statement: str, url: str | None = None) -> list:
    """One statement on `url` (default: this run's PostgreSQL); its rows."""
    import asyncpg

    conn = await asyncpg.connect((url or PG_URL or "").replace("postgres://", "postgresql://", 1))
    try:
        return list(await conn.fetch(statement))
    finally:
        await conn.close()


@contextmanager
def own_database(folder: Path, prefix: str) -> Iterator[str]:
    """The URL of an empty database for this test, gone when the block ends."""
    if not PG_URL:
        yield f"sqlite://{folder}/{prefix}.sqlite3"
        return
    name = f"{prefix}_{os.getpid()}"
    asyncio.run(pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(pg_execute(f"CREATE DATABASE {name}"))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
