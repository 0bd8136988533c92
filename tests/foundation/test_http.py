"""HTTP conventions every client can rely on: problem+json, request ids, health, readiness, docs."""

from __future__ import annotations

import logging
import random
import re

import orjson
from fakeredis import FakeAsyncRedis, FakeServer
from sanic.response import HTTPResponse

from api.kit.answer import Answer
from tests.support.catalog import load_catalog


async def test_every_response_carries_a_request_id(client):
    for path in ("/healthz", "/api/v1/items", "/nowhere"):
        r = await client.get(path)
        assert len(r.headers["x-request-id"]) >= 8


async def test_the_request_ids_we_make_are_distinct_hex(client):
    ids = [(await client.get("/healthz")).headers["x-request-id"] for _ in range(20)]
    assert len(set(ids)) == 20
    assert all(len(i) == 32 and all(c in "0123456789abcdef" for c in i) for i in ids)


async def test_a_caller_request_id_is_echoed_and_a_forged_one_replaced(client):
    r = await client.get("/healthz", headers={"X-Request-ID": "abc12345-trace"})
    assert r.headers["x-request-id"] == "abc12345-trace"
    r = await client.get("/healthz", headers={"X-Request-ID": "x\r\nSet-Cookie: a=b"})
    assert "\n" not in r.headers["x-request-id"] and r.headers["x-request-id"] != "x"


def test_answers_send_the_header_bytes_sanic_would_cr_lf_and_nul_stripped():
    rng = random.Random(9)
    alphabet = 'aZ09-;= "中\r\n\x00\t'
    values = ["nosniff", "a\r\nSet-Cookie: x=1", "nul\x00here", "\n", "", 'attachment; filename="a\rb.pdf"']
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(300)]
    for value in values:
        headers = {"X-Test": value, "X-\r\nName": "v"}
        ours = list(Answer(b"", headers=headers).processed_headers)
        assert ours == list(HTTPResponse(b"", headers=headers).processed_headers)
        assert not any(c in part for c in (b"\r", b"\n", b"\x00") for pair in ours for part in pair)
    sent = dict(Answer(b"", headers={"X-Test": "a\r\nb\x00c"}).processed_headers)
    assert sent[b"X-Test"] == b"abc"


async def test_unknown_route_is_404_problem(client):
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "not_found" and body["status"] == 404 and body["type"].endswith("/not_found")
    assert body["request_id"] == r.headers["x-request-id"]


async def test_wrong_method_is_405_problem(client):
    r = await client.delete("/api/v1/items")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["database"] == "ok" and r.json()["redis"] == "ok"


async def test_an_unexpected_error_is_500_with_request_id_and_nothing_internal(client, monkeypatch):
    from api.catalog import service

    async def broken(*_args, **_kwargs):
        raise RuntimeError('SELECT * FROM "account" WHERE secret=hunter2')

    monkeypatch.setattr(service, "get_item", broken)
    r = await client.get("/api/v1/items/ANY")
    assert r.status_code == 500
    body = r.json()
    assert body["code"] == "internal_error" and body["request_id"] == r.headers["x-request-id"]
    assert "SELECT" not in r.text and "hunter2" not in r.text and "Traceback" not in r.text


async def test_redis_outage_is_503_naming_redis_and_the_service_recovers_without_restart(client, app):
    await load_catalog()
    warm = await client.get("/api/v1/items/360500-MZ-001")
    assert warm.status_code == 200
    server = FakeServer()
    outage = FakeAsyncRedis(server=server)
    kernel = app.ctx.services.kernel  # every area reads Redis and the limiter through the kernel
    real_redis, real_cache_redis = kernel.redis, app.ctx.services.catalog.redis
    real_limiter = kernel.limiter
    from api.kit.ratelimit import RateLimiter

    kernel.redis = app.ctx.services.catalog.redis = outage
    kernel.limiter = RateLimiter(outage)
    app.ctx.services.catalog._checked = float("-inf")
    try:
        server.connected = False
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["unavailable"] == ["redis"]
        # what needs Redis fails closed with a clear answer
        r = await client.post("/api/v1/auth/sms-codes", json={"phone": "13800000001", "purpose": "login"})
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "redis_unavailable" and "Traceback" not in r.text
        # the public catalogue keeps answering, from memory or from the database
        assert (await client.get("/api/v1/items/360500-MZ-001")).json() == warm.json()
        assert (await client.get("/api/v1/items/360500-GA-001")).status_code == 200
        server.connected = True  # Redis is back: the same process answers again
        assert (await client.get("/readyz")).status_code == 200
        r = await client.post("/api/v1/auth/sms-codes", json={"phone": "13800000001", "purpose": "login"})
        assert r.status_code == 202
    finally:
        kernel.redis, app.ctx.services.catalog.redis = real_redis, real_cache_redis
        kernel.limiter = real_limiter


async def test_database_outage_is_named_by_readyz(client, monkeypatch):
    import api.app

    async def down():
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(api.app, "ping_database", down)
    r = await client.get("/readyz")
    assert r.status_code == 503 and r.json()["unavailable"] == ["database"]


async def test_access_log_is_json_lines_without_query_values(client, caplog):
    caplog.set_level(logging.INFO, logger="ywt.access")
    r = await client.get("/api/v1/items?q=张三的身份证")
    lines = [rec for rec in caplog.records if rec.name == "ywt.access"]
    assert lines, "no access log line"
    fields = lines[-1].fields
    assert (
        fields["method"] == "GET" and fields["path"] == "/api/v1/items" and fields["status"] == r.status_code
    )
    assert fields["request_id"] == r.headers["x-request-id"] and fields["latency_ms"] >= 0
    from api.kit.logs import JsonLines

    line = JsonLines().format(lines[-1])
    assert orjson.loads(line)["path"] == "/api/v1/items" and "张三" not in line


async def test_openapi_describes_every_route_with_its_schemas(client, app):
    r = await client.get("/docs/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routed = set()
    for route in app.router.routes:
        if route.path.startswith("docs"):
            continue
        path = "/" + route.path.replace("<", "{").replace(">", "}")
        path = re.sub(r"{(\w+):\w+}", r"{\1}", path)
        for method in route.methods - {"HEAD", "OPTIONS"}:
            routed.add((path, method))
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "OpenAPI documents routes that do not exist"
    item = spec["paths"]["/api/v1/items/{code}"]["get"]
    assert "200" in item["responses"] and "404" in item["responses"]
    assert "application/json" in item["responses"]["200"]["content"]
    params = {p["name"] for p in spec["paths"]["/api/v1/items"]["get"]["parameters"]}
    assert {"q", "department", "kind", "community_level", "limit", "cursor"} <= params


async def test_docs_ui_is_served(client):
    r = await client.get("/docs")
    assert r.status_code == 200 and "html" in r.headers["content-type"]
