"""The OpenAPI document is valid OpenAPI 3.0, self-contained and exact about what the validator holds."""

from __future__ import annotations

import re

import orjson
from openapi_spec_validator import validate


async def _spec(client) -> dict:
    r = await client.get("/docs/openapi.json")
    assert r.status_code == 200
    return r.json()


async def test_the_document_is_valid_openapi(client):
    spec = await _spec(client)
    assert spec["openapi"].startswith("3.0.")
    validate(spec)


async def test_every_ref_resolves_to_a_component(client):
    spec = await _spec(client)
    text = orjson.dumps(spec).decode()
    assert "#/$defs/" not in text and '"$defs"' not in text
    refs = set(re.findall(r'"\$ref":"#/components/schemas/([^"]+)"', text))
    assert refs and refs <= set(spec["components"]["schemas"])
    for name in ("FieldError", "Problem", "Ref", "FeeOut", "MissingMaterial", "TokenIn"):
        assert name in spec["components"]["schemas"], name
    assert "model_config" not in text
