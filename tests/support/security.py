"""What the SECURITY.md tests (tests/identity/test_security_*.py) look at: problem answers, the SMS code keys,
every row and every Redis key as a dump would show them, the log lines the app writes, and Redis going
away."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from redis.asyncio import ConnectionPool
from sanic import Sanic
from tortoise import Tortoise, connections

from api.identity import sms_codes
from api.kit.logs import JsonLines
from api.kit.pii import is_valid_id_number

ME = "/api/v1/me"

_ID_CANDIDATE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")


def assert_problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 answer with this status (and code), no traceback in it."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status and body["request_id"]
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body


def code_key(app: Sanic, phone: str, purpose: str = "login") -> str:
    return sms_codes.code_key(purpose, app.ctx.services.identity.phone_index(phone))


async def table_rows(table: str) -> list[dict[str, Any]]:
    return await connections.get("default").execute_query_dict(f'SELECT * FROM "{table}"')


async def all_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, read with raw SQL (what a database dump would show)."""
    tables = sorted({model._meta.db_table for model in Tortoise.apps["models"].values()})
    return {table: await table_rows(table) for table in tables}


def cells_containing(rows: dict[str, list[dict[str, Any]]], *needles: str) -> list[str]:
    found = []
    for table, items in rows.items():
        for row in items:
            for column, value in row.items():
                text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                for needle in needles:
                    if needle in text:
                        found.append(f"{table}.{column} holds {needle!r}")
    return found


async def redis_items(app: Sanic) -> list[tuple[bytes, bytes]]:
    """Every key and everything stored under it, whatever the type."""
    redis = app.ctx.services.kernel.redis
    items = []
    async for key in redis.scan_iter(count=1000):
        kind = await redis.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "string":
            values = [await redis.get(key) or b""]
        elif kind == "list":
            values = await redis.lrange(key, 0, -1)
        elif kind == "hash":
            values = [b"%s=%s" % pair for pair in (await redis.hgetall(key)).items()]
        elif kind == "set":
            values = list(await redis.smembers(key))
        elif kind == "zset":
            values = [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        else:
            values = [kind.encode()]
        items.append((key, b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in values)))
    return items


def valid_id_numbers_in(text: str) -> list[str]:
    return [m for m in _ID_CANDIDATE.findall(text) if is_valid_id_number(m)]


def installed_handler() -> logging.Handler:
    """The handler setup_logging put on the "ywt" logger (JSON lines, with its filters)."""
    for handler in logging.getLogger("ywt").handlers:
        if isinstance(handler.formatter, JsonLines):
            return handler
    raise AssertionError("setup_logging installed no JSON-lines handler on the ywt logger")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.stream = io.StringIO()
        self.emitted = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")
        self.emitted += 1


@contextmanager
def production_log_lines() -> Iterator[_Capture]:
    """What the app's own log handler writes, at DEBUG: the installed handler's filters and formatter on a
    second handler that writes to memory. If setup_logging dropped its ScrubFilter, so would this."""
    ywt = logging.getLogger("ywt")
    template = installed_handler()
    capture = _Capture()
    for f in template.filters:
        capture.addFilter(f)
    capture.setFormatter(template.formatter)
    level = ywt.level
    ywt.setLevel(logging.DEBUG)
    ywt.addHandler(capture)
    try:
        yield capture
    finally:
        ywt.removeHandler(capture)
        ywt.setLevel(level)


@asynccontextmanager
async def redis_down(app: Sanic) -> AsyncIterator[None]:
    """Every component shares app.ctx.services.kernel.redis: point it at a port where nothing listens, then
    put it back."""
    redis = app.ctx.services.kernel.redis
    original = redis.connection_pool
    dead = ConnectionPool.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    redis.connection_pool = dead
    try:
        yield
    finally:
        redis.connection_pool = original
        await dead.disconnect()
