"""SECURITY.md rows 3 and 5: access tokens (EdDSA JWT) — what is refused, and that others can verify them.

Each refused token is crafted from a real one: the unchanged claims re-signed with our key are accepted
(the control), so a refusal below is caused by the one thing that was changed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.kit.auth import TokenService
from api.kit.errors import Unauthorized
from api.kit.keys import JWT_FILE, load_signing_keys, retire_signing_key, rotate_signing_key
from tests.support.people import bearer, new_account, sms_sign_in
from tests.support.security import ME, assert_problem

PHONE = "13800000101"
REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "typ"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
async def signed_in(client, app) -> dict:
    tokens = await sms_sign_in(client, PHONE)
    tokens["claims"] = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    return tokens


def sign(app, claims: dict, *, kid: str | None = None, key: Any = None, **headers: Any) -> str:
    """Claims signed with our current key (or `key`), under `kid` (ours by default), with extra headers."""
    keys = app.ctx.services.kernel.tokens.keys
    return jwt.encode(
        claims,
        key or keys.private[keys.current],
        algorithm="EdDSA",
        headers={"kid": keys.current if kid is None else kid, **headers},
    )


async def assert_refused(client, token: str) -> None:
    r = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert_problem(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def accepted_of(client, tokens: dict[str, str]) -> list[str]:
    """The names of the tokens that were not refused with 401 problem+json (all cases run, all reported)."""
    accepted = []
    for name, token in tokens.items():
        try:
            await assert_refused(client, token)
        except AssertionError as exc:
            accepted.append(f"{name}: {str(exc)[:200]}")
    return accepted


async def test_the_unchanged_claims_re_signed_with_our_key_are_accepted(client, app, signed_in):
    token = sign(app, signed_in["claims"])
    r = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == signed_in["account"]["id"]


# ---- row 3: what a token must be ------------------------------------------------------------------------


def _without(name: str) -> Callable[[dict], dict]:
    return lambda c: {k: v for k, v in c.items() if k != name}


def _with(**changes: Any) -> Callable[[dict], dict]:
    return lambda c: {**c, **changes}


def _expired(c: dict) -> dict:
    now = int(time.time())
    return {**c, "iat": now - 1000, "nbf": now - 1000, "exp": now - 60}


def _not_yet_valid(c: dict) -> dict:
    now = int(time.time())
    return {**c, "iat": now + 3600, "nbf": now + 3600, "exp": now + 4000}


CLAIM_CHANGES = {
    "no exp": _without("exp"),
    "expired": _expired,
    "issued in the future": _not_yet_valid,
    "wrong aud": _with(aud="another-api"),
    "aud list without ours": _with(aud=["another-api", "ywt"]),
    "wrong iss": _with(iss="https://evil.example"),
    "no iss": _without("iss"),
    "no aud": _without("aud"),
    "no jti": _without("jti"),
    "no iat": _without("iat"),
    "no sub": _without("sub"),
    "no typ": _without("typ"),
    "typ refresh": _with(typ="refresh"),
    "typ id": _with(typ="id"),
    "sub not an account id": _with(sub="admin"),
    "sub of no account": _with(sub="999999"),
}


async def test_a_token_with_bad_claims_is_refused_even_when_signed_with_our_key(client, app, signed_in):
    crafted = {name: sign(app, change(signed_in["claims"])) for name, change in CLAIM_CHANGES.items()}
    assert await accepted_of(client, crafted) == []


async def test_alg_none_is_refused(client, app, signed_in):
    kid = app.ctx.services.kernel.tokens.keys.current
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64json({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64json(signed_in['claims'])}."
        await assert_refused(client, unsigned)
        # the real signature kept beside the "none" header does not help either
        real_sig = signed_in["access_token"].split(".")[2]
        await assert_refused(client, unsigned + real_sig)


async def test_hs256_signed_with_our_published_public_key_is_refused(client, app, signed_in):
    jwks = (await client.get("/.well-known/jwks.json")).json()
    jwk = jwks["keys"][0]
    public = jwt.PyJWK(jwk).key
    secrets_to_try = [
        unb64(jwk["x"]),  # the raw 32 public-key bytes
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwk).encode(),
    ]
    for secret in secrets_to_try:
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            signing_input = (
                f"{b64json({'alg': alg, 'typ': 'JWT', 'kid': jwk['kid']})}.{b64json(signed_in['claims'])}"
            )
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            await assert_refused(client, f"{signing_input}.{b64(mac)}")


async def test_the_refresh_token_is_not_an_access_token(client, signed_in):
    await assert_refused(client, signed_in["refresh_token"])


async def test_a_tampered_payload_with_the_original_signature_is_refused(client, signed_in):
    header, payload, signature = signed_in["access_token"].split(".")
    claims = json.loads(unb64(payload))
    for tampered in (
        {**claims, "roles": ["admin", "resident"]},
        {**claims, "rnl": 3},
        {**claims, "exp": claims["exp"] + 86400},
        {**claims, "sub": str(int(claims["sub"]) + 1)},
    ):
        await assert_refused(client, f"{header}.{b64json(tampered)}.{signature}")
    # one flipped bit of the signature
    raw = bytearray(unb64(signature))
    raw[0] ^= 1
    await assert_refused(client, f"{header}.{payload}.{b64(bytes(raw))}")


GARBAGE = [
    "garbage",
    "a.b.c",
    "a.b",
    "....",
    "eyJhbGciOiJFZERTQSJ9.e30.",
    b64json({"alg": "EdDSA", "kid": "x"}) + ".bm90LWpzb24.c2ln",
    b64json(["not", "an", "object"]) + ".e30.c2ln",
    "x" * 4000,
]


async def test_garbage_is_refused(client):
    assert await accepted_of(client, {g[:40]: g for g in GARBAGE}) == []


async def test_no_token_or_another_scheme_is_refused(client, signed_in):
    for headers in (
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": signed_in["access_token"]},  # no scheme
    ):
        r = await client.get(ME, headers=headers)
        assert_problem(r, 401, "unauthorized")


async def test_a_valid_token_verifies_with_nothing_but_the_published_jwks(client, app, settings, signed_in):
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    jwks = r.json()
    for jwk in jwks["keys"]:
        assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
        assert "d" not in jwk, "the private part of a key is published"
    key_set = jwt.PyJWKSet.from_dict(jwks)
    token = signed_in["access_token"]
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(
        token,
        key_set[kid].key,
        algorithms=["EdDSA"],
        audience=settings.security.audience,
        issuer=settings.security.issuer,
        options={"require": REQUIRED},
    )
    assert claims["sub"] == str(signed_in["account"]["id"]) and claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] <= 900
    header, payload, signature = token.split(".")
    forged = f"{header}.{b64json({**claims, 'roles': ['admin']})}.{signature}"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key_set[kid].key, algorithms=["EdDSA"], audience=settings.security.audience)


# ---- row 5: keys by kid from our own ring -----------------------------------------------------------------


async def test_an_unknown_kid_is_refused(client, app, signed_in):
    claims = signed_in["claims"]
    stranger = Ed25519PrivateKey.generate()
    await assert_refused(client, sign(app, claims, kid="k-unknown"))  # our key, a kid we never made
    await assert_refused(client, sign(app, claims, kid="k-unknown", key=stranger))
    await assert_refused(client, sign(app, claims, key=stranger))  # our kid, someone else's key
    no_kid = jwt.encode(
        claims,
        app.ctx.services.kernel.tokens.keys.private[app.ctx.services.kernel.tokens.keys.current],
        algorithm="EdDSA",
    )
    await assert_refused(client, no_kid)


def _stranger_jwk() -> dict:
    public = Ed25519PrivateKey.generate().public_key()
    return json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))


async def test_a_key_location_header_is_refused_even_with_a_valid_signature(client, app, signed_in):
    headers = {
        "jku": {"jku": "https://evil.example/jwks.json"},
        "x5u": {"x5u": "https://evil.example/cert.pem"},
        "jwk": {"jwk": _stranger_jwk()},
        "x5c": {"x5c": ["MIIBszCCAVmgAwIBAgIU"]},
    }
    crafted = {name: sign(app, signed_in["claims"], **header) for name, header in headers.items()}
    assert await accepted_of(client, crafted) == []


def test_a_rotated_out_key_verifies_until_it_is_retired(tmp_path):
    def service() -> TokenService:
        return TokenService(load_signing_keys(tmp_path, create=False), "https://iss.test", "aud-test", 900)

    def issue(tokens: TokenService) -> str:
        return tokens.issue_access(
            account_id=7, roles=frozenset({"resident"}), real_name_level=1, channel="app", session="s1"
        )

    first = load_signing_keys(tmp_path, create=True)
    assert stat.S_IMODE((tmp_path / JWT_FILE).stat().st_mode) == 0o600
    old_kid = first.current
    old_token = issue(service())

    new_kid = rotate_signing_key(tmp_path)
    assert new_kid != old_kid
    rotated = service()
    assert rotated.keys.current == new_kid
    assert {k["kid"] for k in rotated.keys.jwks()["keys"]} == {old_kid, new_kid}
    assert rotated.verify_access(old_token).account_id == 7
    new_token = issue(rotated)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert rotated.verify_access(new_token).account_id == 7

    with pytest.raises(ValueError):
        retire_signing_key(tmp_path, new_kid)  # the current key cannot go
    retire_signing_key(tmp_path, old_kid)
    retired = service()
    assert [k["kid"] for k in retired.keys.jwks()["keys"]] == [new_kid]
    with pytest.raises(Unauthorized):
        retired.verify_access(old_token)
    assert retired.verify_access(new_token).account_id == 7


# ---- who may call what ------------------------------------------------------------------------------------


async def test_admin_routes_want_a_token_and_the_admin_role(client, app, signed_in):
    account = {"phone": "13800000102", "roles": ["grid_worker"], "points": ["CITY-CENTER"]}
    r = await client.post("/api/v1/admin/accounts", json=account)
    assert_problem(r, 401, "unauthorized")
    r = await client.post("/api/v1/admin/accounts", json=account, headers=bearer(signed_in))
    assert_problem(r, 403, "forbidden")
    r = await client.get("/api/v1/admin/audit", headers=bearer(signed_in))
    assert_problem(r, 403, "forbidden")
    # the role in the token is what counts, so an admin's token is let through
    await new_account(app, "13800000103", roles="admin")
    admin = await sms_sign_in(client, "13800000103")
    assert (await client.get("/api/v1/admin/audit", headers=bearer(admin))).status_code == 200


def test_a_remembered_token_is_refused_once_it_expires_or_its_key_is_retired(tmp_path):
    """A worker checks a token's signature once and remembers it, but never past its exp, nor once the key
    that signed it is gone from the ring."""
    keys = load_signing_keys(tmp_path, create=True)
    tokens = TokenService(keys, "https://iss.test", "aud-test", 1)
    short = tokens.issue_access(
        account_id=7, roles=frozenset({"resident"}), real_name_level=1, channel="app", session="s1"
    )
    assert tokens.verify_access(short).account_id == 7
    assert tokens.verify_access(short).account_id == 7  # remembered
    time.sleep(1.1)
    with pytest.raises(Unauthorized):
        tokens.verify_access(short)

    tokens.access_ttl = 900
    kept = tokens.issue_access(
        account_id=7, roles=frozenset({"resident"}), real_name_level=1, channel="app", session="s1"
    )
    assert tokens.verify_access(kept).account_id == 7
    old_kid = keys.current
    rotate_signing_key(tmp_path)
    retire_signing_key(tmp_path, old_kid)
    del keys.private[old_kid]  # what a worker started after the retirement holds
    with pytest.raises(Unauthorized):
        tokens.verify_access(kept)
