"""load-catalog: every broken row reported, nothing loaded when any row is wrong, upsert by code."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from api.catalog.importer import load_file, validate_data
from api.kit.config import PROJECT_ROOT
from models.catalog import ServiceItem
from tests.support.catalog import load_catalog, small_catalog

DEMO = PROJECT_ROOT / "seeds" / "catalog.json"


async def test_demo_catalogue_is_complete_and_loads(client):
    report = await load_file(DEMO)
    assert report.ok, [str(e) for e in report.errors]
    data = orjson.loads(DEMO.read_bytes())
    assert {d["name"] for d in data["districts"]} == {
        "渝水区",
        "分宜县",
        "仙女湖区",
        "高新区",
        "孔目江生态经济区",
    }
    assert len(data["communities"]) >= 53 and len(data["departments"]) >= 10
    community_points = [p for p in data["points"] if p["level"] == "community"]
    assert {p["community"] for p in community_points} == {c["code"] for c in data["communities"]}
    assert any(p["level"] == "city" for p in data["points"])
    assert len(data["items"]) >= 40 and sum("community" in i["channels"] for i in data["items"]) >= 30
    assert await ServiceItem.all().count() == len(data["items"])


async def test_loading_the_same_file_twice_changes_nothing(client):
    first = await load_file(DEMO)
    assert first.changed
    second = await load_file(DEMO)
    assert second.ok and not second.changed
    assert second.unchanged["items"] == first.created["items"]


async def test_upsert_by_code_updates_rows_and_replaces_materials(client):
    await load_catalog()
    data = small_catalog()
    data["items"][0]["name"] = "最低生活保障申请(新)"
    data["items"][0]["materials"] = data["items"][0]["materials"][:1]
    report = await load_catalog(data)
    assert report.updated == {"items": 1, "materials": 1}
    item = await ServiceItem.get(code="360500-MZ-001").prefetch_related("materials")
    assert item.name == "最低生活保障申请(新)" and [m.code for m in item.materials] == ["M01"]


def test_broken_rows_are_all_reported_with_row_and_field():
    data = small_catalog()
    data["items"][1]["kind"] = "weekly"
    data["items"][2]["department"] = "ghost"
    data["items"][3]["materials"][0]["copies"] = 0
    data["points"][1]["latitude"] = 123
    data["communities"][2]["district"] = "999999"
    data["items"][4]["code"] = data["items"][0]["code"]
    data["items"][0]["promised_days"] = 99
    catalog, errors = validate_data(data)
    assert catalog is None
    found = {(e.section, e.row, e.field) for e in errors}
    assert {
        ("items", 1, "kind"),
        ("items", 2, "department"),
        ("items", 3, "materials.0.copies"),
        ("points", 1, "latitude"),
        ("communities", 2, "district"),
        ("items", 4, "code"),
    } <= found
    assert any(e.section == "items" and e.row == 0 and "承诺时限" in e.message for e in errors)


async def test_cli_loads_nothing_when_a_row_is_wrong_and_reports_every_error(client, settings, tmp_path):
    data = small_catalog()
    data["items"][0]["fee"] = {"amount_fen": -5, "basis": ""}
    data["points"][0]["services"] = ["helicopter"]
    path = tmp_path / "broken.json"
    path.write_bytes(orjson.dumps(data))
    env = {**os.environ, "YWT_DATABASE__URL": settings.database.url, "YWT_REDIS__URL": settings.redis.url}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "load-catalog", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 1
    assert "NOT loaded: 3 error(s)" in result.stderr
    assert "items[0] (360500-MZ-001) fee.amount_fen" in result.stderr
    assert "items[0] (360500-MZ-001) fee.basis" in result.stderr
    assert "points[0] (CITY-CENTER) services.0" in result.stderr
    assert await ServiceItem.all().count() == 0


async def test_cli_loads_a_good_file_and_then_reports_no_change(client, settings, tmp_path):
    path = tmp_path / "good.json"
    path.write_bytes(orjson.dumps(small_catalog()))
    env = {**os.environ, "YWT_DATABASE__URL": settings.database.url, "YWT_REDIS__URL": settings.redis.url}
    run = [sys.executable, "-m", "api.cli", "load-catalog", str(path)]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert first.returncode == 0, first.stderr
    assert "items: 5 created" in first.stdout
    second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert "items: 0 created, 0 updated, 5 unchanged" in second.stdout
    assert await ServiceItem.all().count() == 5
