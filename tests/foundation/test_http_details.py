"""HTTP details: the log line of a 500, `Allow` on every 405, empty query values refused."""

from __future__ import annotations

import logging

import orjson
import pytest

from api.kit.logs import JsonLines


async def test_the_log_line_of_a_500_names_request_route_and_error_type(client, caplog, monkeypatch):
    from api.catalog import service

    async def broken(*_args, **_kwargs):
        raise RuntimeError('SELECT * FROM "account" WHERE secret=hunter2')

    monkeypatch.setattr(service, "get_item", broken)
    caplog.set_level(logging.ERROR, logger="ywt.errors")
    r = await client.get("/api/v1/items/360500-GA-001", headers={"X-Request-ID": "trace-500-abcdef"})
    assert r.status_code == 500 and r.json()["request_id"] == "trace-500-abcdef"
    assert "RuntimeError" not in r.text and "hunter2" not in r.text and "items/<" not in r.text
    (record,) = [rec for rec in caplog.records if rec.name == "ywt.errors"]
    line = orjson.loads(JsonLines().format(record))
    assert line["message"] == "unhandled error" and line["level"] == "error"
    assert line["request_id"] == "trace-500-abcdef"
    assert line["method"] == "GET"
    assert line["route"] == "/api/v1/items/<code:str>"
    assert line["route_name"].endswith("get_item")
    assert line["error_type"] == "builtins.RuntimeError"
    assert "Traceback" in line["error"]


ALL_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _allowed(header: str) -> set[str]:
    return {part.strip() for part in header.split(",") if part.strip()}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("TRACE", "/api/v1/items/360500-GA-001"),
        ("DELETE", "/api/v1/items/360500-GA-001"),
        ("PUT", "/api/v1/applications/1"),
        ("DELETE", "/api/v1/applications/1/materials/2"),
        ("GET", "/api/v1/notifications/1/read"),
        ("TRACE", "/api/v1/items"),
        ("DELETE", "/api/v1/items"),
        ("PATCH", "/api/v1/me"),
    ],
)
async def test_every_405_carries_allow(client, method, path):
    r = await client.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "method_not_allowed"
    allowed = _allowed(r.headers.get("allow", ""))
    assert allowed and method not in allowed, r.headers


async def test_allow_lists_the_methods_of_the_route(client, app):
    r = await client.request("TRACE", "/api/v1/items/360500-GA-001")
    assert {"GET"} <= _allowed(r.headers["allow"]) <= {"GET", "HEAD", "OPTIONS"}
    r = await client.request("PUT", "/api/v1/me")
    assert {"GET", "DELETE"} <= _allowed(r.headers["allow"])


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/admin/audit?to=", "to"),
        ("/api/v1/admin/audit?from=", "from"),
        ("/api/v1/admin/audit?account=", "account"),
        ("/api/v1/work/applications?status=", "status"),
        ("/api/v1/work/applications?due_before=", "due_before"),
        ("/api/v1/items?kind=", "kind"),
        ("/api/v1/items?limit=", "limit"),
    ],
)
async def test_an_empty_enum_date_or_number_query_value_is_422(client, people, path, field):
    admin = await people.admin()
    r = await client.get(path, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
