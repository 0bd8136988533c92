"""The document tells the truth about request bodies: for every route with a JSON body, bodies generated
from the documented schema (hypothesis strategies read from it) are not refused by the validator (422 validation_failed),
and bodies the document forbids (an unknown field, a value outside an enum) are."""

from __future__ import annotations

import copy
import re
import string
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.people import People, Person

EXAMPLES = 6

# rules a JSON schema cannot state (across fields, or against the data): a 422 naming only such a field, on a
# body the document allows, is that rule speaking, not the document being wrong
BEYOND_THE_SCHEMA = {
    ("*", "id_number"): "the check digit of a resident identity number",
    ("*", "delivery"): "an address is needed for mail and grid-worker delivery",
    ("*", "missing_materials"): "each material named once",
    ("PUT /api/v1/me/password", "old_password"): "the old password or a fresh reset code, one of the two",
    ("POST /api/v1/admin/accounts", "points"): "a grid worker has at least one point, each one that exists",
    ("POST /api/v1/admin/accounts", "department"): "a clerk belongs to a department that exists",
    ("POST /api/v1/applications/{application_id}/evaluation", "level"): "a level or the pad's key",
    (
        "POST /api/v1/admin/announcements",
        "audience.code",
    ): "a code of the catalogue for its kind, none for everyone",
    ("POST /api/v1/admin/announcements", "audience"): "an audience that reaches somebody now",
    ("POST /api/v1/admin/announcements", "send_at"): "not before now",
}


def _beyond(operation: str, fields: list[str]) -> bool:
    return all((operation, f) in BEYOND_THE_SCHEMA or ("*", f) in BEYOND_THE_SCHEMA for f in fields)


_TEXT = st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))  # whitespace is stripped first


def _merged(spec: dict, schema: dict) -> dict:
    """A schema with its `$ref` / one-`$ref` `allOf` read in (siblings win, as they narrow it)."""
    schema = dict(schema)
    while "$ref" in schema or len(schema.get("allOf", [])) == 1:
        if "$ref" in schema:
            target = spec["components"]["schemas"][schema.pop("$ref").rsplit("/", 1)[1]]
        else:
            target = _merged(spec, schema.pop("allOf")[0])
        schema = {**target, **schema}
    return schema


def _text(schema: dict) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", max(schema.get("minLength", 0), 12))
    pattern = schema.get("pattern")
    if schema.get("format") == "date-time":
        return st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC)
        ).map(datetime.isoformat)
    if pattern is None:
        return st.text(_TEXT, min_size=low, max_size=high)
    if "(?=" in pattern:  # lookaheads: draw letters and digits, keep what matches
        alphabet = string.ascii_letters + string.digits
        return st.text(alphabet, min_size=low, max_size=high).filter(
            lambda v: re.search(pattern, v) is not None
        )
    return st.from_regex(pattern, fullmatch=True).filter(lambda v: low <= len(v) <= high)


def _strategy(spec: dict, schema: dict) -> st.SearchStrategy[Any]:
    """Values the document allows, for the keywords our document uses (OpenAPI 3.0 words)."""
    schema = _merged(spec, schema)
    if "enum" in schema:
        base: st.SearchStrategy[Any] = st.sampled_from(schema["enum"])
    elif "oneOf" in schema or "anyOf" in schema:
        base = st.one_of([_strategy(spec, part) for part in schema.get("oneOf") or schema["anyOf"]])
    elif schema.get("type") == "string":
        base = _text(schema)
    elif schema.get("type") == "integer":
        base = st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    elif schema.get("type") == "number":
        base = st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    elif schema.get("type") == "boolean":
        base = st.booleans()
    elif schema.get("type") == "array":
        low = schema.get("minItems", 0)
        base = st.lists(
            _strategy(spec, schema.get("items", {})),
            min_size=low,
            max_size=min(schema.get("maxItems", low + 3), low + 3),
            unique_by=(lambda v: repr(v)) if schema.get("uniqueItems") else None,
        )
    elif schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        base = st.fixed_dictionaries(
            {k: _strategy(spec, v) for k, v in props.items() if k in required},
            optional={k: _strategy(spec, v) for k, v in props.items() if k not in required},
        )
    else:
        base = st.none() | st.booleans() | st.integers() | st.text(_TEXT, max_size=8)
    return base | st.none() if schema.get("nullable") else base


def _samples(spec: dict, schema: dict, n: int = EXAMPLES) -> list[Any]:
    found: list[Any] = []

    @settings(
        max_examples=n,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(_strategy(spec, schema))
    def collect(body: Any) -> None:
        found.append(body)

    collect()
    return found


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _object_members(spec: dict, schema: dict) -> list[dict]:
    schema = _resolve(spec, schema)
    if "oneOf" in schema:
        return [m for part in schema["oneOf"] for m in _object_members(spec, part)]
    return [schema]


async def _callers(people: People) -> dict[str, Person | None]:
    return {
        "resident": await people.resident(),
        "grid_worker": await people.grid_worker(),
        "staff": await people.staff(),
        "admin": await people.admin(),
    }


def _roles_by_operation(app) -> dict[tuple[str, str], tuple[str, ...]]:
    out = {}
    for route in app.router.routes:
        path = "/" + route.path.replace("<", "{").replace(">", "}")
        path = re.sub(r":[a-z0-9_]+}", "}", path)  # {name:type} -> {name}
        for method in route.methods:
            out[(path, method.lower())] = getattr(route.handler, "__ywt_roles__", ())
    return out


def _url(path: str) -> str:
    return re.sub(r"{[^}]+}", "1", path)


def _json_body_operations(spec: dict) -> list[tuple[str, str, dict]]:
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                out.append((path, method, body["schema"]))
    return out


def _schema_refusal(r) -> list[str] | None:
    """The fields of a 422 validation_failed, or None when the answer is no such refusal."""
    if r.status_code != 422 or r.json().get("code") != "validation_failed":
        return None
    return [e["field"].split(".")[0] for e in r.json().get("errors") or []] or ["?"]


async def test_bodies_the_document_allows_are_not_refused_and_bodies_it_forbids_are(
    client, app, catalog, people
):
    spec = (await client.get("/docs/openapi.json")).json()
    operations = _json_body_operations(spec)
    assert len(operations) >= 14, [op[:2] for op in operations]
    callers = await _callers(people)
    roles = _roles_by_operation(app)
    wrong: list[str] = []
    sent = 0
    for path, method, schema in operations:
        needed = roles.get((path, method), ())
        who = next((callers[r] for r in ("resident", "grid_worker", "staff", "admin") if r in needed), None)
        if needed == ("*",):
            who = callers["resident"]
        headers = dict(who.headers) if who else {}
        allowed = _samples(spec, schema)
        taken = []  # bodies the validator took: a forbidden variant of one is refused for that change alone
        for body in allowed:
            r = await client.request(method.upper(), _url(path), json=body, headers=headers)
            sent += 1
            fields = _schema_refusal(r)
            if not fields:
                taken.append(body)
            if fields and not _beyond(f"{method.upper()} {path}", fields):
                wrong.append(f"{method.upper()} {path}: allowed {body!r} refused: {r.json()['errors']}")
        # what the document forbids: an unknown field on every member; a value outside each enum
        for member in _object_members(spec, schema):
            base = next((b for b in taken + allowed if isinstance(b, dict) and set(member.get("required", [])) <= set(b)
                         and all(k in member.get("properties", {}) for k in b)), None)  # fmt: skip
            if base is None:
                continue
            if member.get("additionalProperties") is False:
                forbidden = {**base, "zz_not_documented": 1}
                r = await client.request(method.upper(), _url(path), json=forbidden, headers=headers)
                sent += 1
                if _schema_refusal(r) is None:
                    wrong.append(f"{method.upper()} {path}: unknown field answered {r.status_code}")
            for name, prop in member.get("properties", {}).items():
                enum = _resolve(spec, prop).get("enum")
                if not enum or len(enum) == 1 and name in base:  # a union's tag picks the member
                    continue
                forbidden = copy.deepcopy(base)
                forbidden[name] = "zz-not-in-the-enum"
                r = await client.request(method.upper(), _url(path), json=forbidden, headers=headers)
                sent += 1
                if _schema_refusal(r) is None:
                    wrong.append(f"{method.upper()} {path}: {name} outside its enum answered {r.status_code}")
    assert not wrong, "\n".join(wrong)
    assert sent >= len(operations) * EXAMPLES
