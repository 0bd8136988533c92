"""The real server, started the way `make run` starts it: seeded catalogue, 413 on a huge body."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.server import server_env, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    with serving(server_env(tmp), tmp / "server.log") as base:
        yield base, tmp / "server.log"


def test_a_client_giving_up_mid_request_does_not_wedge_the_server(server):
    """The first database query of a worker, cancelled because the client left, once left every later
    query hanging (a lazily opened SQLite connection lost its worker thread)."""
    base, _ = server
    for _ in range(5):
        try:
            httpx.get(base + "/readyz", timeout=0.003)
        except httpx.TimeoutException:
            pass
    time.sleep(0.3)
    assert httpx.get(base + "/readyz", timeout=10).status_code == 200
    assert httpx.get(base + "/api/v1/items", params={"limit": 1}, timeout=10).status_code == 200


def test_first_start_seeds_the_city_catalogue(server):
    base, _ = server
    items, cursor = [], None
    while True:
        page = httpx.get(
            base + "/api/v1/items", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
        ).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(items) >= 40
    assert sum(1 for i in items if i["community_level"]) >= 30
    departments = httpx.get(base + "/api/v1/departments").json()["items"]
    assert len(departments) >= 10
    points = httpx.get(base + "/api/v1/points", params={"limit": 100}).json()["items"]
    assert sum(1 for p in points if p["level"] == "community") >= 53
    assert any(p["code"] == "CITY-CENTER" for p in points)
    districts = {p["district"]["name"] for p in points}
    assert districts == {"渝水区", "分宜县", "仙女湖区", "高新区", "孔目江生态经济区"}


def test_a_20_mb_body_is_refused_with_413_problem(server):
    base, _ = server
    r = httpx.post(
        base + "/api/v1/auth/token",
        content=b"x" * (20 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "payload_too_large"
    assert r.json()["request_id"] == r.headers["x-request-id"]


def test_near_query_over_real_http(server):
    base, _ = server
    r = httpx.get(base + "/api/v1/points", params={"near": "27.8175,114.9170", "limit": 3})
    distances = [p["distance_m"] for p in r.json()["items"]]
    assert r.status_code == 200 and distances == sorted(distances) and len(distances) == 3


def test_access_log_lines_are_json_and_hold_no_query_values(server):
    base, log_path = server
    httpx.get(base + "/api/v1/items", params={"q": "13800000001"})
    time.sleep(0.2)
    lines = [line for line in log_path.read_text().splitlines() if '"ywt.access"' in line]
    assert lines and all(line.startswith("{") for line in lines)
    assert "13800000001" not in log_path.read_text()


def test_access_lines_of_the_running_server_mask_personal_data_in_path_and_request_id(server):
    """The server writes its access lines by the direct path (no capturing handler in its process): an
    ID number and a mobile in the path and in a caller's X-Request-ID are masked there as in any record,
    and the line is in the file within a moment, while the server keeps running."""
    base, log_path = server
    request_id = "trace-13800000002"
    r = httpx.get(base + "/api/v1/items/360502198803152015-13800000002", headers={"X-Request-ID": request_id})
    assert r.status_code == 404 and r.headers["x-request-id"] == request_id
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        found = [line for line in log_path.read_text().splitlines() if "trace-138****0002" in line]
        if found:
            break
        time.sleep(0.05)
    assert found and '"path":"/api/v1/items/3605**********2015-138****0002"' in found[0]
    text = log_path.read_text()
    assert "360502198803152015" not in text and "13800000002" not in text
