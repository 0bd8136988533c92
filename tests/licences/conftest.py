"""Fixtures of the e-licence tests: the session app's sandbox library, back to its seeded state after each."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sanic import Sanic

from integrations.elicence import SANDBOX_ISSUERS, SandboxLibrary

LICENCES = "/api/v1/licences"
VERIFY = "/api/v1/licence-verifications"


@pytest.fixture
def library(app: Sanic, client: httpx.AsyncClient) -> Iterator[SandboxLibrary]:
    lib: SandboxLibrary = app.ctx.services.licences.library
    lib.reset()
    issuers = dict(app.ctx.services.licences.issuers)
    yield lib
    lib.reset()
    app.ctx.services.licences.issuers.clear()
    app.ctx.services.licences.issuers.update(issuers or SANDBOX_ISSUERS)


async def licences_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, dict]:
    """The holder's licences by type."""
    r = await client.get(LICENCES, headers=headers)
    assert r.status_code == 200, r.text
    return {item["type"]: item for item in r.json()["items"]}


async def present(client: httpx.AsyncClient, headers: dict[str, str], licence_id: int, **body) -> dict:
    r = await client.post(f"{LICENCES}/{licence_id}/presentations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def verify(client: httpx.AsyncClient, headers: dict[str, str], token: str) -> httpx.Response:
    return await client.post(VERIFY, json={"token": token}, headers=headers)
