"""The people of the feedback, stats and inbox tests: two residents, two intake workers, clerks of two
departments, an admin. Shared by tests/feedback, tests/stats and tests/notifications."""

from __future__ import annotations

import httpx
from sanic import Sanic

from tests.identity.helpers import LI, ZHANG, verified_resident
from tests.identity.staff_helpers import make_account, sign_in_as

GRID_PHONE = "13700000011"
CLERK_PHONE = "13700000012"
CIVIL_STAFF_PHONE = "13700000021"
POLICE_STAFF_PHONE = "13700000022"
HRSS_STAFF_PHONE = "13700000023"
ADMIN_PHONE = "13700000031"


async def zhang(client: httpx.AsyncClient) -> dict:
    return await verified_resident(client, ZHANG)


async def li(client: httpx.AsyncClient) -> dict:
    return await verified_resident(client, LI)


async def grid_worker(app: Sanic) -> int:
    """The grid worker of the two city-proper community points (an account only: he never signs in here)."""
    return await make_account(app, GRID_PHONE, ["grid_worker"], points=["P360502001001", "P360502002001"])


async def window_clerk(app: Sanic) -> int:
    """A civil-affairs window clerk who takes cases in at the counter."""
    return await make_account(app, CLERK_PHONE, ["staff"], department="civil")


async def staff_of(app: Sanic, client: httpx.AsyncClient, department: str) -> dict:
    phone = {"civil": CIVIL_STAFF_PHONE, "police": POLICE_STAFF_PHONE, "hrss": HRSS_STAFF_PHONE}[department]
    return await sign_in_as(app, client, phone, ["staff"], department=department)


async def admin(app: Sanic, client: httpx.AsyncClient) -> dict:
    return await sign_in_as(app, client, ADMIN_PHONE, ["admin"])


def account_id(tokens: dict) -> int:
    return int(tokens["account"]["id"])


async def sign_in_grid_worker(app: Sanic, client: httpx.AsyncClient, phone: str = "13700000041") -> dict:
    return await sign_in_as(app, client, phone, ["grid_worker"], points=["P360502001001"])
