"""Test fixtures: one app per session on SQLite + fakeredis, or on PostgreSQL + Redis when
YWT_TEST_DATABASE_URL and YWT_TEST_REDIS_URL are set. Every test starts from empty tables and Redis.
On top: the small catalogue (`catalog`), the people of a test (`people`), an admin and 张三 (tests/support)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sanic import Sanic
from tortoise import Tortoise, connections

from api.app import create_app
from api.kit.config import Settings, load_settings
from api.kit.db import migrate
from tests.support.asgi import running
from tests.support.catalog import load_catalog
from tests.support.people import ZHANG, People, Person

Sanic.test_mode = True

PG_URL = os.environ.get("YWT_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("YWT_TEST_REDIS_URL")


def make_settings(tmp: Path, **extra: str) -> Settings:
    env = {
        "YWT_APP__DATA_DIR": str(tmp / "data"),
        "YWT_DATABASE__URL": PG_URL or f"sqlite://{tmp / 'test.sqlite3'}",
        "YWT_REDIS__URL": REDIS_URL or "memory://",
        "YWT_APP__LOG_LEVEL": "INFO",
        # the in-server deadline watch would act on the real clock in the middle of tests
        "YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL": "86400",
        # and so would the delivery loop: tests run its passes themselves (api.notifications.delivery)
        "YWT_NOTIFICATIONS__INTERVAL": "86400",
        # and the licence expiry watch (tests call tell_expiring)
        "YWT_LICENCES__EXPIRY_WATCH_INTERVAL": "86400",
    }
    env.update(extra)
    return load_settings(environ=env)


async def reset_database(settings: Settings) -> None:
    """A blank schema before migrating, so every session starts from the migrations alone."""
    if settings.database_url.startswith("sqlite://"):
        Path(settings.database_url.removeprefix("sqlite://")).unlink(missing_ok=True)
        return
    from api.kit.db import tortoise_config

    await Tortoise.init(config=tortoise_config(settings))
    await connections.get("default").execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    await Tortoise.close_connections()


@pytest.fixture(scope="session")
async def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    result = make_settings(tmp_path_factory.mktemp("ywt"))
    await reset_database(result)
    await migrate(result)
    return result


@pytest.fixture(scope="session")
async def app(settings: Settings) -> Sanic:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Sanic) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as http:
        yield http


@pytest.fixture(autouse=True)
async def clean(request: pytest.FixtureRequest) -> None:
    """Empty every table and the Redis database before each test that uses the app."""
    if "client" not in request.fixturenames and "app" not in request.fixturenames:
        return
    app: Sanic = request.getfixturevalue("app")
    request.getfixturevalue("client")
    conn = connections.get("default")
    tables = [model._meta.db_table for model in Tortoise.apps["models"].values()]
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )
    else:
        await conn.execute_script(
            "PRAGMA foreign_keys=OFF;"
            + "".join(f'DELETE FROM "{t}";' for t in tables)
            + "PRAGMA foreign_keys=ON;"
        )
    await app.ctx.services.kernel.redis.flushdb()
    app.ctx.services.catalog.forget_local()
    # ids start again at 1 in the emptied tables: what this worker remembers of earlier tests' accounts goes
    app.ctx.services.principals.forget_local()
    app.ctx.services.kernel.tokens.forget_local()


@pytest.fixture
async def catalog(client: httpx.AsyncClient) -> None:
    """The small catalogue of tests/support/catalog.py, loaded (three departments, four points, five items)."""
    await load_catalog()


@pytest.fixture
def people(app: Sanic, client: httpx.AsyncClient) -> People:
    """Makes this test's people: `await people.staff(department="civil")`, `people.grid_worker(points=[...])`,
    `people.admin()`, `people.resident(LI)`, each a Person with `.id` and `.headers`."""
    return People(app, client)


@pytest.fixture
async def admin(people: People) -> Person:
    return await people.admin()


@pytest.fixture
async def zhang(people: People) -> Person:
    """张三, signed in by SMS through the app, his real name verified."""
    return await people.resident(ZHANG)
