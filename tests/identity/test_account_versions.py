"""Signed-in requests without the database: each worker keeps the accounts it has seen, used only while their
version is the one in Redis (issue 9, item 1).

What a user would notice if this were wrong: a role taken away, a disabled account, a new binding or a new
real-name level that one worker does not see. Each test warms the cache first, changes the account, and
asks again at once."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api.kit import versions
from api.kit.db import in_transaction
from api.kit.versions import VERSION_KEY
from models import identity as db
from tests.support.people import ZHANG, bearer, sms_sign_in, wechat_code
from tests.support.security import assert_problem

ME = "/api/v1/me"
QUEUE = "/api/v1/work/applications"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("catalog")


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sql: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.sql.append(record.getMessage())


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements tortoise sends while the block runs (its db_client logger, at DEBUG)."""
    logger = logging.getLogger("tortoise.db_client")
    handler, level = _Statements(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.sql
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def publishing(app) -> Iterator[None]:
    """Writes made by the test itself copy their versions to the app's Redis, as a request's writes do."""
    token = versions.publisher.set(app.ctx.services.kernel.versions)
    try:
        yield
    finally:
        versions.publisher.reset(token)


async def test_a_second_me_reads_nothing_from_the_database(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    first = await client.get(ME, headers=bearer(tokens))
    assert first.status_code == 200, first.text
    with statements() as sql:
        again = await client.get(ME, headers=bearer(tokens))
    assert again.status_code == 200
    assert again.json() == first.json()
    assert sql == []


async def test_a_role_taken_away_is_refused_on_the_very_next_request(client, app, people):
    worker = await people.grid_worker()
    assert (await client.get(QUEUE, headers=worker.headers)).status_code == 200
    with publishing(app):
        async with in_transaction():
            await db.set_roles(worker.id, ["resident"])
    assert_problem(await client.get(QUEUE, headers=worker.headers), 403)
    assert (await client.get(ME, headers=worker.headers)).json()["roles"] == ["resident"]


async def test_a_change_rolled_back_changes_nothing_and_publishes_nothing(client, app, people):
    worker = await people.grid_worker()
    assert (await client.get(QUEUE, headers=worker.headers)).status_code == 200
    redis = app.ctx.services.kernel.redis
    before = await redis.get(VERSION_KEY.format(worker.id))
    with publishing(app), pytest.raises(RuntimeError):
        async with in_transaction():
            await db.set_roles(worker.id, ["resident"])
            raise RuntimeError("the rest of the change failed")
    assert await redis.get(VERSION_KEY.format(worker.id)) == before
    assert (await client.get(QUEUE, headers=worker.headers)).status_code == 200


async def test_a_disabled_account_is_refused_at_once(client, app, people):
    worker = await people.grid_worker()
    assert (await client.get(ME, headers=worker.headers)).status_code == 200
    with publishing(app):
        await db.changed(worker.id, status="disabled")  # outside a transaction: published at once
    assert_problem(await client.get(ME, headers=worker.headers), 401)


async def test_real_name_and_bindings_show_in_me_at_once(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    assert (await client.get(ME, headers=bearer(tokens))).json()["real_name_level"] == 1
    r = await client.post(
        "/api/v1/me/real-name",
        json={"name": ZHANG["name"], "id_number": ZHANG["id_number"]},
        headers=bearer(tokens),
    )
    assert r.status_code == 200, r.text
    me = (await client.get(ME, headers=bearer(tokens))).json()
    assert me["real_name_level"] == 2 and me["name"] == "张*"
    code, _ = await wechat_code(client)
    assert (
        await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=bearer(tokens))
    ).status_code == 201
    assert [b["channel"] for b in (await client.get(ME, headers=bearer(tokens))).json()["bindings"]] == [
        "wechat"
    ]
    assert (await client.delete("/api/v1/me/bindings/wechat", headers=bearer(tokens))).status_code == 204
    assert (await client.get(ME, headers=bearer(tokens))).json()["bindings"] == []


async def test_a_writer_that_died_before_publishing_is_seen_after_max_age(client, app, people):
    """The version never reached Redis (no publisher: as if the process died after its commit): the
    cached copy is used until it is `max_age` old, then the database is read and its version published."""
    worker = await people.grid_worker()
    assert (await client.get(QUEUE, headers=worker.headers)).status_code == 200
    unset = versions.publisher.set(None)  # as if the process died after its commit
    try:
        async with in_transaction():
            await db.set_roles(worker.id, ["resident"])
    finally:
        versions.publisher.reset(unset)
    directory = app.ctx.services.principals
    assert (await client.get(QUEUE, headers=worker.headers)).status_code == 200  # the stale minute
    directory.max_age, saved = 0.0, directory.max_age
    try:
        assert_problem(await client.get(QUEUE, headers=worker.headers), 403)
    finally:
        directory.max_age = saved
    stored = await app.ctx.services.kernel.redis.get(VERSION_KEY.format(worker.id))
    assert int(stored) == (await db.get_account(worker.id)).version


async def test_versions_lost_in_redis_are_read_again_from_the_database(client, app):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 200
    redis = app.ctx.services.kernel.redis
    await redis.delete(VERSION_KEY.format(tokens["account"]["id"]))
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 200
    assert await redis.get(VERSION_KEY.format(tokens["account"]["id"])) is not None


# ---- every write to what require() and /me read goes through models.identity.changed ----------------------

GUARDED = {"Account", "AccountPoint", "ChannelBinding", "RealNameRecord"}
WRITES = {
    "create",
    "update",
    "delete",
    "save",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
}
TABLES = ("account", "account_point", "channel_binding", "real_name_record")


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def bypassing_writes(source: str) -> list[str]:
    """`function: call` for each ORM write to a guarded model in a function that does not call `changed`,
    and each SQL string writing to a guarded table."""
    found = []
    tree = ast.parse(source)
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or function.name == "changed":
            continue
        calls = [n for n in ast.walk(function) if isinstance(n, ast.Call)]
        goes_through = any(
            (isinstance(c.func, ast.Name) and c.func.id == "changed")
            or (isinstance(c.func, ast.Attribute) and c.func.attr == "changed")
            for c in calls
        )
        for call in calls:
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr in WRITES
                and (_root_name(func.value) in GUARDED or _attr_root(func.value) in GUARDED)
                and not goes_through
            ):
                found.append(f"{function.name}: {ast.unparse(call)[:80]}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = " ".join(node.value.lower().replace('"', "").split())
            for table in TABLES:
                if any(f"{verb} {table} " in text + " " for verb in ("update", "insert into", "delete from")):
                    found.append(f"SQL: {node.value[:80]}")
    return found


def _attr_root(node: ast.AST) -> str | None:
    """`db.Account.filter(...)` → "Account"."""
    while isinstance(node, ast.Call):
        node = node.func
    while isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.attr in GUARDED:
            return node.attr
        node = node.value
        while isinstance(node, ast.Call):
            node = node.func
    return None


def test_every_write_to_accounts_goes_through_changed():
    offenders = []
    for folder in ("api", "models", "scripts", "integrations"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            offenders += [f"{path.relative_to(ROOT)} {hit}" for hit in bypassing_writes(path.read_text())]
    assert offenders == []


@pytest.mark.parametrize(
    "source",
    [
        "async def f(i):\n    await Account.filter(id=i).update(roles='admin')\n",
        "async def f(i):\n    await db.ChannelBinding.filter(account_id=i).delete()\n",
        "async def f(i):\n    await RealNameRecord.create(account_id=i)\n",
        "async def f(i):\n    await AccountPoint.filter(account_id=i).delete()\n",
        "Q = 'UPDATE \"account\" SET roles = $1'\n",
        "Q = 'insert into account_point (account_id, point_id) values (1, 2)'\n",
    ],
)
def test_the_write_check_sees_a_bypass(source):
    assert bypassing_writes(source) != []
    assert bypassing_writes(source.replace("):\n", "):\n    await changed(i)\n", 1)) == [] or "Q =" in source
