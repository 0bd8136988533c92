"""The OpenAPI document is valid OpenAPI 3.0, self-contained and exact about what the validator holds."""

from __future__ import annotations

import re

import orjson
from openapi_spec_validator import validate

from api.kit.ids import MAX_ID, MAX_ID64


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


def _walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


async def test_the_document_is_exact_about_what_the_validators_hold(client):
    spec = await _spec(client)
    schemas = spec["components"]["schemas"]
    for path, node in _walk(spec):
        if "enum" in node:
            assert node.get("type") in ("string", "integer", "boolean"), (path, node)
    # request bodies refuse unknown fields and say which are required
    for name in (
        "SmsCodeIn",
        "LogoutIn",
        "PasswordIn",
        "RealNameIn",
        "ApplicationIn",
        "ComplaintIn",
        "SmsCodeGrant",
    ):
        assert schemas[name]["additionalProperties"] is False, name
        assert schemas[name].get("required"), name
    assert schemas["SmsCodeIn"]["properties"]["purpose"]["enum"] == [
        "login",
        "reset_password",
        "bind",
        "delete_account",
    ]
    assert schemas["AccountOut"]["properties"]["roles"]["items"] == {"$ref": "#/components/schemas/Role"}
    assert schemas["Role"]["enum"] == ["resident", "grid_worker", "staff", "admin"]
    assert schemas["TokenIn"]["discriminator"]["propertyName"] == "grant_type"
    items = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/items"]["get"]["parameters"]}
    assert items["limit"] == {"type": "integer", "minimum": 1}
    assert items["kind"]["enum"] == ["same_day", "committed"]
    points = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/points"]["get"]["parameters"]}
    assert "pattern" in points["near"]
    assert schemas["SmsCodeIn"]["properties"]["phone"]["pattern"] == "^1[3-9][0-9]{9}$"
    # one object answered: no page parameters
    residents = {p["name"] for p in spec["paths"]["/api/v1/work/residents"]["get"]["parameters"]}
    assert residents == {"id_number"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            if "requestBody" in op:
                assert {"413", "415", "422"} <= set(op["responses"]), where
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(answer["content"]) == ["application/problem+json"], where
                    assert answer["content"]["application/problem+json"]["schema"] == {
                        "$ref": "#/components/schemas/Problem"
                    }
            if op.get("security"):
                assert "401" in op["responses"], where
            if "tags" in op and path.startswith("/api/"):
                assert "503" in op["responses"], where  # the database or Redis down
    assert "电子证照" not in spec["info"]["description"]


async def test_operation_ids_are_the_handlers_names_and_unique(client):
    spec = await _spec(client)
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert spec["paths"]["/api/v1/items"]["get"]["operationId"] == "list_items"


async def test_path_ids_are_documented_with_their_range_and_a_404(client):
    spec = await _spec(client)
    seen = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"].endswith("_id"):
                    seen += 1
                    assert parameter["schema"]["minimum"] == 1, (method, path)
                    # bounded by the column: INTEGER keys 2^31-1, BIGINT keys (notifications) 2^63-1
                    assert parameter["schema"]["maximum"] in (MAX_ID, MAX_ID64), (method, path)
                    assert "404" in op["responses"], (method, path)
    assert seen >= 14


async def test_a_nullable_enum_lists_null_among_its_values(client):
    """OpenAPI 3.0.3: `nullable` does not widen an `enum`; a field that takes one of some values or null
    (the inbox of a mandatory category: true or left out as null) lists null."""
    spec = await _spec(client)
    nullable_enums = [n for _, n in _walk(spec) if n.get("nullable") and isinstance(n.get("enum"), list)]
    assert nullable_enums  # there are some: the check below is not empty
    assert all(None in n["enum"] for n in nullable_enums)
    inbox = spec["components"]["schemas"]["MandatoryChannelChoices"]["properties"]["inbox"]
    assert inbox["enum"] == [True, None]
