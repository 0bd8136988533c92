"""/metrics: Prometheus text format, requests per route template and status, database and Redis call latencies,
cache lookups; answered to an allowed address or an admin's token only; one sum over every Sanic worker.

The in-process app keeps its values in this process for the whole session (prometheus-client's registry is
global), so every in-process test compares two scrapes: what its own requests added."""

from __future__ import annotations

import asyncio
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from api.kit import metrics
from api.kit.config import PROJECT_ROOT, MetricsSection
from api.kit.metrics import REQUEST_BUCKETS, Tally, address_allowed, allowed_networks
from tests.conftest import make_settings
from tests.foundation.test_two_workers import _children, _serving_pid
from tests.support.server import free_port, started

ITEM = "360500-MZ-001"
ITEM_ROUTE = "/api/v1/items/<code:str>"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_of(samples: Samples, route: str, status: int, method: str = "GET") -> float:
    return value(samples, "ywt_http_requests_total", method=method, route=route, status=str(status))


def timed_of(samples: Samples, route: str, status: int, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return value(samples, "ywt_http_request_duration_seconds_count", **labels)


async def scrape(client: httpx.AsyncClient, **kwargs) -> Samples:
    r = await client.get("/metrics", **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def client_from(app, address: str) -> httpx.AsyncClient:
    """A client of the running app whose requests come from `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 50001))
    return httpx.AsyncClient(transport=transport, base_url="http://ywt.test")


@pytest.fixture
def allow(app, monkeypatch) -> Callable[[list[str] | None], None]:
    """Set `metrics.allow` of the running app for this test."""

    def set_allow(networks: list[str] | None) -> None:
        settings = app.ctx.settings.model_copy(update={"metrics": MetricsSection(allow=networks)})
        monkeypatch.setattr(app.ctx, "settings", settings)

    return set_allow


# ---- what is counted ----------------------------------------------------------------------------------


async def test_requests_are_counted_and_timed_per_route_template_and_status(client, catalog):
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/api/v1/items/{ITEM}")).status_code == 200
    for code in ("360500-XX-001", "360500-XX-002"):
        assert (await client.get(f"/api/v1/items/{code}")).status_code == 404
    for path in ("/nowhere/one", "/nowhere/two", "/api/v1/no-such-thing"):
        assert (await client.get(path)).status_code == 404
    assert (await client.post("/api/v1/items")).status_code == 405
    text = (await client.get("/metrics")).text
    after = parse(text)

    def added(of: Callable[..., float], route: str, status: int, method: str = "GET") -> float:
        return of(after, route, status, method) - of(before, route, status, method)

    assert added(requests_of, ITEM_ROUTE, 200) == 3
    assert added(timed_of, ITEM_ROUTE, 200) == 3
    assert added(requests_of, ITEM_ROUTE, 404) == 2
    assert added(requests_of, "unmatched", 404) == 3  # three paths, one label
    assert added(requests_of, "unmatched", 405, "POST") == 1  # no route of that method: no template either
    # the histogram: every answer is in the +Inf bucket, and its time was added to the sum
    labels = {"method": "GET", "route": ITEM_ROUTE, "status": "200"}
    inf = "ywt_http_request_duration_seconds_bucket"
    assert value(after, inf, **labels, le="+Inf") - value(before, inf, **labels, le="+Inf") == 3
    assert value(after, "ywt_http_request_duration_seconds_sum", **labels) > value(
        before, "ywt_http_request_duration_seconds_sum", **labels
    )
    # no raw path becomes a label: the series stay bounded by the routes
    assert ITEM not in text and "360500-XX" not in text and "nowhere" not in text


async def test_database_and_redis_calls_and_the_catalogue_cache_are_measured(client, catalog, people):
    before = await scrape(client)
    first = await client.get(f"/api/v1/items/{ITEM}")  # this worker's memory misses, Redis misses, database
    second = await client.get(f"/api/v1/items/{ITEM}")  # this worker's memory answers
    assert first.status_code == second.status_code == 200 and first.content == second.content
    await people.resident()  # SMS code (a MULTI pipeline), account created in a transaction
    after = await scrape(client)

    def added(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert added("ywt_cache_lookups_total", cache="catalog", result="miss") == 1
    assert added("ywt_cache_lookups_total", cache="catalog", result="hit") == 1
    assert added("ywt_cache_lookups_total", cache="catalog_redis", result="miss") == 1
    assert added("ywt_db_query_duration_seconds_count", operation="select") >= 1
    assert added("ywt_db_query_duration_seconds_count", operation="insert") >= 1  # inside in_transaction()
    assert added("ywt_redis_command_duration_seconds_count", command="GET") >= 2
    assert added("ywt_redis_command_duration_seconds_count", command="SET") >= 1
    assert added("ywt_redis_command_duration_seconds_count", command="MULTI") >= 1
    operations = {dict(labels).get("operation") for name, labels in after if name.startswith("ywt_db_")}
    assert operations <= {"select", "insert", "update", "delete", "other", "script"}


# ---- who may read it ----------------------------------------------------------------------------------


async def test_an_admin_token_reads_it_from_any_address_and_a_resident_token_is_refused(
    app, client, people, allow
):
    allow([])  # nobody by address
    resident, admin = await people.resident(), await people.admin()
    anonymous = await client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
    refused = await client.get("/metrics", headers=resident.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert "ywt_" not in refused.text
    await scrape(client, headers=admin.headers)
    async with client_from(app, "203.0.113.9") as outsider:
        await scrape(outsider, headers=admin.headers)
        assert (await outsider.get("/metrics", headers=resident.headers)).status_code == 403


async def test_an_address_outside_the_allow_list_needs_a_token(app, client, allow):
    async with client_from(app, "203.0.113.9") as outsider:
        # the embedded default lets in loopback only; a forwarded-for header of an untrusted peer is not believed
        allow(None)
        assert (await outsider.get("/metrics")).status_code == 401
        assert (await outsider.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})).status_code == 401
        allow(["10.0.0.0/8", "2001:db8::/32"])
        assert (await outsider.get("/metrics")).status_code == 401
        assert (await client.get("/metrics")).status_code == 401  # loopback is no longer in the list
        allow(["203.0.113.0/24"])
        await scrape(outsider)


def test_the_allow_list_defaults_to_loopback_in_embedded_mode_and_to_nobody_in_production(tmp_path):
    embedded = allowed_networks(make_settings(tmp_path))
    assert address_allowed("127.0.0.1", embedded) and address_allowed("::1", embedded)
    assert address_allowed("::ffff:127.0.0.1", embedded)
    assert not address_allowed("192.168.1.20", embedded) and not address_allowed("", embedded)
    production = allowed_networks(make_settings(tmp_path, YWT_APP__MODE="production"))
    assert production == () and not address_allowed("127.0.0.1", production)
    listed = allowed_networks(
        make_settings(tmp_path, YWT_APP__MODE="production", YWT_METRICS__ALLOW="10.1.2.3")
    )
    assert address_allowed("10.1.2.3", listed) and not address_allowed("10.1.2.4", listed)


async def test_the_document_describes_it_as_plain_text_for_an_admin_token_or_no_token(client):
    spec = (await client.get("/docs/openapi.json")).json()
    operation = spec["paths"]["/metrics"]["get"]
    assert operation["security"] == [{"bearer": []}, {}]  # a bearer token, or none (an allowed address)
    assert {"200", "401", "403"} <= set(operation["responses"])
    assert list(operation["responses"]["200"]["content"]) == ["text/plain"]
    assert "metrics.allow" in operation["description"]


# ---- several workers: one sum ---------------------------------------------------------------------------

REDIS_URL = os.environ.get("YWT_TEST_REDIS_URL") or "redis://127.0.0.1:6379/13"
WORKERS = 2
START_WITHIN = 60.0


def _stale_file(folder: Path) -> None:
    """A previous run's worker file in the metrics folder: 1000 /healthz answers that this run never gave."""
    code = (
        "from api.kit import metrics\n"
        "for _ in range(1000):\n"
        "    metrics.observe_request('GET', 'healthz', 200, 0.001)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, check=True, timeout=60)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_two_workers_report_one_sum_and_a_previous_runs_files_are_emptied(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    _stale_file(folder)
    assert list(folder.glob("counter_*.db"))
    with redis.Redis.from_url(REDIS_URL) as r:
        r.flushdb()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YWT_", "PROMETHEUS_"))}
    env |= {
        "YWT_APP__MODE": "embedded",
        "YWT_APP__DATA_DIR": str(tmp_path),
        "YWT_APP__LOG_LEVEL": "WARNING",
        "YWT_APP__SEED_DEMO": "false",
        "YWT_SERVER__HOST": "127.0.0.1",
        "YWT_SERVER__PORT": str(port),
        "YWT_SERVER__WORKERS": str(WORKERS),
        "YWT_DATABASE__URL": f"sqlite://{tmp_path}/ywt.sqlite3",
        "YWT_REDIS__URL": REDIS_URL,
    }
    log_path = tmp_path / "server.log"
    conns: dict[int, http.client.HTTPConnection] = {}
    try:
        with started(env, log_path) as proc:
            deadline = time.monotonic() + START_WITHIN
            while len(conns) < WORKERS:  # one kept-alive connection to each worker
                assert proc.poll() is None, "server exited:\n" + log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, f"{len(conns)} workers answered:\n" + log_path.read_text()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    status, _ = _get(conn, "/healthz")
                except OSError:
                    conn.close()
                    time.sleep(0.2)
                    continue
                pid = _serving_pid(conn, port, _children(proc.pid))
                assert status == 200 and pid is not None
                if pid in conns:
                    conn.close()
                else:
                    conns[pid] = conn
            first, second = conns.values()
            for _ in range(3):
                assert _get(first, "/api/v1/points/none-such")[0] == 404
            for _ in range(4):
                assert _get(second, "/api/v1/items/none-such")[0] == 404
            # a worker hands its tally of requests to its file within Tally.EVERY seconds (its own, at once)
            time.sleep(Tally.EVERY + 0.5)
            # each worker answers both workers' sums
            for conn in (first, second):
                status, text = _get(conn, "/metrics")
                assert status == 200, text
                samples = parse(text)
                assert requests_of(samples, "/api/v1/points/<code:str>", 404) == 3
                assert requests_of(samples, ITEM_ROUTE, 404) == timed_of(samples, ITEM_ROUTE, 404) == 4
                # the connection probes only: not the 1000 of the previous run's file
                assert 0 < requests_of(samples, "/healthz", 200) < 1000
            assert {int(f.stem.rsplit("_", 1)[1]) for f in folder.glob("counter_*.db")} == set(conns)
    finally:
        for conn in conns.values():
            conn.close()
        with redis.Redis.from_url(REDIS_URL) as r:
            r.flushdb()


def _samples_of(route: str) -> dict[tuple[str, str | None], float]:
    """This route's request samples in an exposition, by (name, bucket bound)."""
    return {
        (name, dict(labels).get("le")): sample
        for (name, labels), sample in parse(metrics.exposition().decode()).items()
        if dict(labels).get("route") == route and not name.endswith("_created")
    }


def test_a_tally_hands_over_what_each_observation_would_have_made():
    route = "tally/<exact:str>"
    # on the bounds (a bound counts what equals it), between them, beyond the last
    latencies = [*REQUEST_BUCKETS, 0.0001, 0.0007, 0.003, 0.3, 7.0, 42.0]
    for seconds in latencies:
        metrics.observe_request("GET", route, 200, seconds)
    samples = _samples_of("/" + route)
    bucket = "ywt_http_request_duration_seconds_bucket"
    for bound in REQUEST_BUCKETS:
        le = next(le for name, le in samples if name == bucket and le != "+Inf" and float(le) == bound)
        assert samples[(bucket, le)] == sum(1 for seconds in latencies if seconds <= bound), bound
    assert samples[(bucket, "+Inf")] == len(latencies)
    assert samples[("ywt_http_requests_total", None)] == len(latencies)
    assert samples[("ywt_http_request_duration_seconds_count", None)] == len(latencies)
    assert samples[("ywt_http_request_duration_seconds_sum", None)] == pytest.approx(sum(latencies))


async def test_a_tally_is_handed_over_by_its_timer_without_an_exposition(monkeypatch):
    monkeypatch.setattr(Tally, "EVERY", 0.05)
    labels = {"method": "GET", "route": "/tally/<timer:str>", "status": "200"}
    metrics.observe_request("GET", "tally/<timer:str>", 200, 0.001)
    metrics.observe_request("GET", "tally/<timer:str>", 200, 0.002)
    metrics.cache_hit("tally")
    assert REGISTRY.get_sample_value("ywt_http_requests_total", labels) is None  # tallied, not handed over
    await asyncio.sleep(0.2)
    assert REGISTRY.get_sample_value("ywt_http_requests_total", labels) == 2
    assert REGISTRY.get_sample_value("ywt_cache_lookups_total", {"cache": "tally", "result": "hit"}) == 1
