"""Contract: GET /.well-known/jwks.json; the sandbox endpoints exist only in embedded mode."""

from __future__ import annotations

import jwt
import pytest

from api.routes import api_v1
from tests.support.people import ZHANG, sms_sign_in


async def test_jwks_publishes_public_ed25519_keys_by_kid(client):
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    keys = r.json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519"
        assert isinstance(key["kid"], str) and key["kid"] and key["x"]
        assert "d" not in key
        assert key.get("use", "sig") == "sig"
    assert len({k["kid"] for k in keys}) == len(keys)


async def test_an_access_token_verifies_with_the_published_keys_alone(client, settings):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    [jwk] = [k for k in keys if k["kid"] == kid]
    claims = jwt.decode(
        tokens["access_token"],
        jwt.PyJWK(jwk).key,
        algorithms=["EdDSA"],
        audience=settings.security.audience,
        issuer=settings.security.issuer,
    )
    assert claims["sub"] == str(tokens["account"]["id"]) and claims["typ"] == "access"


def _paths(group) -> set[str]:
    paths = set()
    for blueprint in group.blueprints:
        for future in blueprint._future_routes:
            paths.add((blueprint.url_prefix or "") + future.uri)
    return paths


def test_the_production_route_group_has_no_sandbox_routes():
    production = _paths(api_v1(embedded=False))
    embedded = _paths(api_v1(embedded=True))
    assert not any(p.startswith("/sandbox") for p in production)
    assert {"/sandbox/sms", "/sandbox/wechat/oauth-code"} <= embedded
    assert production == {p for p in embedded if not p.startswith("/sandbox")}


@pytest.fixture
def production(app, settings, monkeypatch):
    prod = settings.model_copy(update={"app": settings.app.model_copy(update={"mode": "production"})})
    assert not prod.embedded
    monkeypatch.setattr(app.ctx, "settings", prod)
    return prod


async def test_sandbox_sms_answers_404_in_production(client, production):
    r = await client.get("/api/v1/sandbox/sms", params={"phone": ZHANG["phone"]})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_sandbox_wechat_code_answers_404_in_production(client, production):
    r = await client.post("/api/v1/sandbox/wechat/oauth-code", json={})
    assert r.status_code == 404


async def test_the_sandbox_guard_answers_404_before_reading_the_input(client, production):
    # a bad query or body would be 422 in embedded mode; in production nothing is revealed
    assert (await client.get("/api/v1/sandbox/sms")).status_code == 404
    r = await client.post(
        "/api/v1/sandbox/wechat/oauth-code", content=b"nope", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 404


async def test_sandbox_endpoints_answer_in_embedded_mode(client):
    assert (await client.get("/api/v1/sandbox/sms", params={"phone": ZHANG["phone"]})).status_code == 200
    assert (await client.post("/api/v1/sandbox/wechat/oauth-code", json={})).status_code == 201
