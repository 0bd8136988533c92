"""Back-office people for tests: accounts made through the identity service layer, signed in by password."""

from __future__ import annotations

import httpx
from sanic import Sanic
from tortoise.transactions import in_transaction

from api.identity import staff
from api.identity.sms_codes import _cooldown_key
from tests.identity.helpers import sms_sign_in

PASSWORD = "Gongzuo2026"
ADMIN_PHONE = "13700000001"
STAFF_PHONE = "13700000002"
GRID_PHONE = "13700000003"
RESIDENT_PHONE = "13700000004"
DEPARTMENT = "civil"
POINT = "P360502001001"


async def make_account(
    app: Sanic,
    phone: str,
    roles: list[str],
    *,
    department: str | None = None,
    points: list[str] | None = None,
    password: str | None = PASSWORD,
) -> int:
    """An account with these roles and scopes, as POST /admin/accounts makes it (no audit row); its id."""
    department_id, point_ids = await staff.resolve_scopes(roles, department, points or [])
    async with in_transaction():
        account = await staff.insert_account(
            app.ctx.services.identity,
            phone,
            roles,
            department_id=department_id,
            point_ids=point_ids,
            password=password,
        )
    return account.id


async def password_sign_in(client: httpx.AsyncClient, phone: str, password: str = PASSWORD) -> dict:
    r = await client.post(
        "/api/v1/auth/token",
        json={"grant_type": "password", "phone": phone, "password": password, "channel": "app"},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def sign_in_as(
    app: Sanic,
    client: httpx.AsyncClient,
    phone: str,
    roles: list[str],
    *,
    department: str | None = None,
    points: list[str] | None = None,
) -> dict:
    """Make the account and sign it in with the password grant: the token answer."""
    await make_account(app, phone, roles, department=department, points=points)
    return await password_sign_in(client, phone)


async def admin_tokens(app: Sanic, client: httpx.AsyncClient, phone: str = ADMIN_PHONE) -> dict:
    return await sign_in_as(app, client, phone, ["admin"])


async def staff_tokens(app: Sanic, client: httpx.AsyncClient, phone: str = STAFF_PHONE) -> dict:
    """A window clerk of the civil affairs department (load the catalogue first)."""
    return await sign_in_as(app, client, phone, ["staff"], department=DEPARTMENT)


async def grid_tokens(app: Sanic, client: httpx.AsyncClient, phone: str = GRID_PHONE) -> dict:
    """A grid worker of one community point (load the catalogue first)."""
    return await sign_in_as(app, client, phone, ["grid_worker"], points=[POINT])


async def resident_tokens(client: httpx.AsyncClient, phone: str = RESIDENT_PHONE) -> dict:
    return await sms_sign_in(client, phone)


async def end_cooldown(app: Sanic, phone: str) -> None:
    """Let the next SMS code go out now instead of after the resend cooldown."""
    await app.ctx.services.kernel.redis.delete(_cooldown_key(app.ctx.services.identity.phone_index(phone)))
