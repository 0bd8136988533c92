"""Deleting one's account takes fresh proof in the same request (issue 8): the password, or a code sent for
purpose delete_account. These helpers give it, for the tests that delete an account on the way."""

from __future__ import annotations

import httpx
from sanic import Sanic

from tests.support.people import end_cooldown, request_code

ME = "/api/v1/me"


async def delete_code(client: httpx.AsyncClient, app: Sanic, phone: str) -> str:
    """A fresh delete_account code for the phone (the resend cooldown of an earlier code let pass)."""
    await end_cooldown(app, phone)
    return await request_code(client, phone, "delete_account")


async def delete_me(
    client: httpx.AsyncClient, headers: dict[str, str], proof: dict[str, str]
) -> httpx.Response:
    """DELETE /me with a JSON body (httpx's `delete` takes none)."""
    return await client.request("DELETE", ME, json=proof, headers=headers)


async def delete_with_code(
    client: httpx.AsyncClient, app: Sanic, phone: str, headers: dict[str, str]
) -> httpx.Response:
    """DELETE /me proven with a fresh delete_account code."""
    return await delete_me(client, headers, {"sms_code": await delete_code(client, app, phone)})
