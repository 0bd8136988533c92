"""The people of the tests and how they sign in.

Residents are the DESIGN.md demo people, who sign in with an SMS code from the sandbox and verify their real
name against the population sandbox: 张三 (ZHANG), 李娟 (LI), 王五 (WANG). Back-office people (admin, window
clerks, grid workers) are made through the identity service layer by `People`, the `people` fixture of
tests/conftest.py: each gets the next free phone 137 0000 0001, 137 0000 0002 … unless given one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sanic import Sanic

from api.identity import staff
from api.identity.sms_codes import cooldown_key
from api.kit.db import in_transaction
from models import identity as db

ZHANG = {"name": "张三", "id_number": "360502198803152015", "phone": "13800000001"}
LI = {"name": "李娟", "id_number": "360521199207084021", "phone": "13800000002"}
WANG = {"name": "王五", "id_number": "360502197505206113", "phone": "13800000003"}

PASSWORD = "Gongzuo2026"  # of every back-office person given one
POINT = "P360502001001"  # the community point a grid worker serves unless told otherwise
TOKEN = "/api/v1/auth/token"
SMS = "/api/v1/auth/sms-codes"


# ---- signing in through the API ------------------------------------------------------------------------


async def last_code(client: httpx.AsyncClient, phone: str) -> str:
    r = await client.get("/api/v1/sandbox/sms", params={"phone": phone})
    assert r.status_code == 200, r.text
    return r.json()["items"][-1]["code"]


async def request_code(client: httpx.AsyncClient, phone: str, purpose: str = "login", **kw: Any) -> str:
    """Ask for an SMS code (202 checked) and read it from the sandbox."""
    r = await client.post(SMS, json={"phone": phone, "purpose": purpose}, **kw)
    assert r.status_code == 202, r.text
    return await last_code(client, phone)


def other_code(code: str) -> str:
    """A well-formed code that is not this one."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def end_cooldown(app: Sanic, phone: str) -> None:
    """Let the next SMS code go out now instead of after the resend cooldown (the time that would pass, not
    a lower limit). The key is spelled here: api.identity.sms_codes keeps its own helper private."""
    services = app.ctx.services
    await services.kernel.redis.delete(cooldown_key(services.identity.phone_index(phone)))


async def sign_in_with_code(client: httpx.AsyncClient, phone: str, code: str, **kw: Any) -> httpx.Response:
    return await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": phone, "code": code, "channel": "app"}, **kw
    )


async def sms_sign_in(client: httpx.AsyncClient, phone: str, channel: str = "app", **extra: str) -> dict:
    """Sign in with a fresh SMS code: the token answer (access_token, refresh_token, account …)."""
    code = await request_code(client, phone)
    r = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": phone, "code": code, "channel": channel, **extra}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def password_sign_in(client: httpx.AsyncClient, phone: str, password: str = PASSWORD) -> dict:
    r = await client.post(
        TOKEN, json={"grant_type": "password", "phone": phone, "password": password, "channel": "app"}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(TOKEN, json={"grant_type": "refresh_token", "refresh_token": token})


async def wechat_code(
    client: httpx.AsyncClient, openid: str | None = None, unionid: str | None = None
) -> tuple[str, str]:
    """An OAuth code the WeChat sandbox issues, as the official account's H5 page would receive it (for a new
    openid unless given one): the code and its openid."""
    body = {k: v for k, v in {"openid": openid, "unionid": unionid}.items() if v}
    r = await client.post("/api/v1/sandbox/wechat/oauth-code", json=body)
    assert r.status_code == 201, r.text
    return r.json()["code"], r.json()["openid"]


def bearer(tokens: dict) -> dict[str, str]:
    """The Authorization header of a token answer."""
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def verified_resident(client: httpx.AsyncClient, person: dict = ZHANG) -> dict:
    """A demo person signed in by SMS with his real name verified (level 2): the token answer."""
    tokens = await sms_sign_in(client, person["phone"])
    r = await client.post(
        "/api/v1/me/real-name",
        json={"name": person["name"], "id_number": person["id_number"]},
        headers=bearer(tokens),
    )
    assert r.status_code == 200, r.text
    return tokens


# ---- accounts made behind the API -----------------------------------------------------------------------


async def make_account(
    app: Sanic,
    phone: str,
    roles: Sequence[str],
    *,
    department: str | None = None,
    points: Sequence[str] | None = None,
    password: str | None = PASSWORD,
) -> int:
    """An account with these roles and scopes, as POST /admin/accounts makes it (no audit row); its id."""
    department_id, point_ids = await staff.resolve_scopes(list(roles), department, list(points or ()))
    async with in_transaction():
        account = await staff.insert_account(
            app.ctx.services.identity,
            phone,
            list(roles),
            department_id=department_id,
            point_ids=point_ids,
            password=password,
        )
    return account.id


async def new_account(app: Sanic, phone: str, roles: str = "resident", **fields: Any) -> db.Account:
    """An account row made straight in the database with any fields (roles as stored, comma-separated), found
    by phone at sign-in: for what the service layer would refuse to make or would make differently."""
    ident = app.ctx.services.identity
    index = ident.phone_index(phone)
    return await db.Account.create(
        phone_index=index, phone_enc=ident.cipher.encrypt(phone, f"phone:{index}"), roles=roles, **fields
    )


# ---- the people fixture ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """Someone a test acts as: his account id, his phone, the Authorization header to send and, when he signed
    in through POST /auth/token, its answer."""

    id: int
    phone: str
    headers: dict[str, str]
    tokens: dict[str, Any] | None = None


class People:
    """Makes the people of one test. A back-office person's token is minted by the app's own token service,
    as the password grant would issue it (argon2 would cost a quarter second per account; the password grant
    is tested in tests/identity); `sign_in=True` gives him PASSWORD and signs him in through the API."""

    def __init__(self, app: Sanic, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client
        self._serial = 0

    async def resident(self, person: dict[str, str] = ZHANG) -> Person:
        """A demo person (ZHANG, LI, WANG) signed in by SMS, his real name verified."""
        tokens = await verified_resident(self.client, person)
        return Person(tokens["account"]["id"], person["phone"], bearer(tokens), tokens)

    async def admin(self, *, phone: str | None = None, sign_in: bool = False) -> Person:
        return await self.back_office(["admin"], phone=phone, sign_in=sign_in)

    async def staff(
        self, department: str = "civil", *, phone: str | None = None, sign_in: bool = False
    ) -> Person:
        """A window clerk of a department (the catalogue must be loaded)."""
        return await self.back_office(["staff"], department=department, phone=phone, sign_in=sign_in)

    async def grid_worker(
        self, points: Sequence[str] = (POINT,), *, phone: str | None = None, sign_in: bool = False
    ) -> Person:
        """A grid worker of community points (the catalogue must be loaded); his app is the handheld."""
        return await self.back_office(["grid_worker"], points=points, phone=phone, sign_in=sign_in)

    async def back_office(
        self,
        roles: Sequence[str],
        *,
        department: str | None = None,
        points: Sequence[str] | None = None,
        phone: str | None = None,
        sign_in: bool = False,
    ) -> Person:
        phone = phone or await self.free_phone()
        if sign_in:
            await make_account(self.app, phone, roles, department=department, points=points)
            tokens = await password_sign_in(self.client, phone)
            return Person(tokens["account"]["id"], phone, bearer(tokens), tokens)
        account_id = await self.account(roles, department=department, points=points, phone=phone)
        token = self.app.ctx.services.kernel.tokens.issue_access(
            account_id=account_id,
            roles=frozenset(roles),
            real_name_level=1,
            channel="handheld" if list(roles) == ["grid_worker"] else "app",
            session=uuid.uuid4().hex,
        )
        return Person(account_id, phone, {"Authorization": f"Bearer {token}"})

    async def account(self, roles: Sequence[str], *, phone: str | None = None, **scope: Any) -> int:
        """An account that never signs in (no password, no token), bound to `department=` or `points=` as its
        roles want: its id."""
        phone = phone or await self.free_phone()
        return await make_account(self.app, phone, roles, password=None, **scope)

    async def free_phone(self) -> str:
        """The next phone 137 0000 00NN that no account has."""
        ident = self.app.ctx.services.identity
        while True:
            self._serial += 1
            phone = f"137{self._serial:08d}"
            if await db.account_by_phone_index(ident.phone_index(phone)) is None:
                return phone
