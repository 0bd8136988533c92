"""The public catalogue as a resident's app sees it."""

from __future__ import annotations

import pytest

from tests.support.catalog import load_catalog


async def test_departments_are_listed_by_code(client, catalog):
    r = await client.get("/api/v1/departments")
    assert r.status_code == 200
    assert [d["code"] for d in r.json()["items"]] == ["civil", "hrss", "police"]


async def test_items_list_every_item_in_code_order(client, catalog):
    r = await client.get("/api/v1/items")
    body = r.json()
    assert r.status_code == 200
    assert [i["code"] for i in body["items"]] == [
        "360500-GA-001",
        "360500-MZ-001",
        "360500-MZ-002",
        "360500-RS-001",
        "360500-RS-002",
    ]
    assert body["next_cursor"] is None
    police = body["items"][0]
    assert police["fee"] == {"amount_fen": 2000, "basis": "居民身份证工本费标准"}
    assert police["department"]["name"] == "新余市公安局"
    assert body["items"][1]["fee"] is None


@pytest.mark.parametrize(
    ("query", "codes"),
    [
        ("q=津贴", ["360500-MZ-002"]),
        ("q=登记", ["360500-RS-001", "360500-RS-002"]),
        ("q=gA-00", ["360500-GA-001"]),
        ("q=%25", []),
        ("department=hrss", ["360500-RS-001", "360500-RS-002"]),
        ("kind=same_day", ["360500-MZ-002", "360500-RS-001"]),
        ("community_level=true", ["360500-MZ-001", "360500-MZ-002", "360500-RS-001", "360500-RS-002"]),
        ("community_level=false", ["360500-GA-001"]),
        ("kind=committed&department=civil", ["360500-MZ-001"]),
    ],
)
async def test_item_filters(client, catalog, query, codes):
    r = await client.get(f"/api/v1/items?{query}")
    assert r.status_code == 200, r.text
    assert [i["code"] for i in r.json()["items"]] == codes


async def test_item_pages_follow_the_cursor_without_gaps_or_repeats(client, catalog):
    seen, cursor = [], None
    for _ in range(5):
        r = await client.get("/api/v1/items", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        body = r.json()
        assert len(body["items"]) <= 2
        seen += [i["code"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 5


async def test_item_guide_has_everything_a_resident_needs(client, catalog):
    r = await client.get("/api/v1/items/360500-MZ-001")
    assert r.status_code == 200
    guide = r.json()
    assert guide["legal_basis"].startswith("《社会救助暂行办法》")
    assert guide["kind"] == "committed" and guide["promised_days"] == 5 and guide["statutory_days"] == 20
    assert guide["scope"] == "city_wide"
    assert guide["delivery_modes"] == ["pickup", "mail", "grid_worker"]
    assert guide["conditions"] == ["本市户籍居民"]
    assert [s["step"] for s in guide["process"]] == ["受理", "决定"]
    assert [(m["code"], m["name"], m["form"]) for m in guide["materials"]] == [
        ("M01", "居民身份证", "original"),
        ("M02", "户口簿", "copy"),
    ]


async def test_unknown_item_is_404_problem(client, catalog):
    r = await client.get("/api/v1/items/NOPE-000")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "item_not_found"


async def test_points_filter_by_district_community_and_service(client, catalog):
    r = await client.get("/api/v1/points?district=360521")
    assert [p["code"] for p in r.json()["items"]] == ["P360521100201"]
    r = await client.get("/api/v1/points?community=360502002001")
    assert [p["code"] for p in r.json()["items"]] == ["P360502002001"]
    r = await client.get("/api/v1/points?service=door_to_door")
    assert [p["code"] for p in r.json()["items"]] == ["P360502001001", "P360502002001"]
    r = await client.get("/api/v1/points?service=appointment&district=360502")
    assert [p["code"] for p in r.json()["items"]] == ["CITY-CENTER", "P360502002001"]


async def test_points_near_sorts_by_distance_and_reports_metres(client, catalog):
    r = await client.get("/api/v1/points?near=27.8295,114.9295")
    items = r.json()["items"]
    assert [p["code"] for p in items] == ["P360502001001", "CITY-CENTER", "P360502002001", "P360521100201"]
    distances = [p["distance_m"] for p in items]
    assert distances == sorted(distances)
    assert 50 < distances[0] < 100  # 0.0005° of latitude and longitude at 27.8°N is about 74 m
    assert 24000 < distances[-1] < 26000  # 分宜 is about 25 km west


async def test_points_near_pages_by_distance(client, catalog):
    first = (await client.get("/api/v1/points?near=27.8295,114.9295&limit=3")).json()
    second = (
        await client.get(
            "/api/v1/points", params={"near": "27.8295,114.9295", "limit": 3, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [p["code"] for p in first["items"] + second["items"]] == [
        "P360502001001",
        "CITY-CENTER",
        "P360502002001",
        "P360521100201",
    ]
    assert second["next_cursor"] is None


async def test_point_detail(client, catalog):
    r = await client.get("/api/v1/points/CITY-CENTER")
    body = r.json()
    assert body["level"] == "city" and body["community"] is None
    assert body["services"] == ["appointment", "green_channel", "online"]
    assert body["district"] == {"code": "360502", "name": "渝水区"}
    assert (await client.get("/api/v1/points/NOPE")).status_code == 404


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/items?limit=0", "limit"),
        ("/api/v1/items?limit=-3", "limit"),
        ("/api/v1/items?limit=abc", "limit"),
        ("/api/v1/items?cursor=garbage!!", "cursor"),
        ("/api/v1/items?cursor=eyJ4IjoxfQ", "cursor"),
        ("/api/v1/items?kind=weekly", "kind"),
        ("/api/v1/items?department=nope", "department"),
        ("/api/v1/items?community_level=maybe", "community_level"),
        ("/api/v1/items?colour=red", "colour"),
        ("/api/v1/items?kind=same_day&kind=committed", "kind"),
        ("/api/v1/points?near=abc", "near"),
        ("/api/v1/points?near=95,114", "near"),
        ("/api/v1/points?near=27.8", "near"),
        ("/api/v1/points?service=helicopter", "service"),
        ("/api/v1/points?district=999999", "district"),
        ("/api/v1/points?community=000000000000", "community"),
        ("/api/v1/points?near=27.8,114.9&cursor=eyJhZnRlciI6IlAifQ", "cursor"),
    ],
)
async def test_bad_query_is_422_naming_the_field(client, catalog, path, field):
    r = await client.get(path)
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert body["status"] == 422 and body["request_id"] == r.headers["x-request-id"]
    assert [e["field"] for e in body["errors"]] == [field]
    assert "pydantic" not in r.text and "Input should" not in r.text


async def test_huge_limit_is_capped_at_100(client, catalog):
    from tests.support.catalog import item, small_catalog

    data = small_catalog()
    data["items"] += [item(f"360500-ZZ-{n:03d}", f"测试事项{n}") for n in range(120)]
    await load_catalog(data)
    r = await client.get("/api/v1/items?limit=100000")
    assert r.status_code == 200
    assert len(r.json()["items"]) == 100
    assert r.json()["next_cursor"] is not None
    r = await client.get("/api/v1/items")
    assert len(r.json()["items"]) == 20


async def test_catalogue_change_is_visible_at_once_despite_the_cache(client, catalog, app):
    from tests.support.catalog import small_catalog

    before = (await client.get("/api/v1/items/360500-MZ-001")).json()
    assert before["promised_days"] == 5
    data = small_catalog()
    data["items"][0]["promised_days"] = 3
    report = await load_catalog(data)
    assert report.updated == {"items": 1}
    await app.ctx.services.catalog.invalidate()  # what load-catalog does after a change
    after = (await client.get("/api/v1/items/360500-MZ-001")).json()
    assert after["promised_days"] == 3


async def test_another_workers_change_is_seen_within_the_recheck_interval(client, catalog, app, monkeypatch):
    from api.catalog.service import VERSION_KEY
    from tests.support.catalog import small_catalog

    cache = app.ctx.services.catalog
    assert (await client.get("/api/v1/items/360500-MZ-001")).json()["promised_days"] == 5
    data = small_catalog()
    data["items"][0]["promised_days"] = 2
    await load_catalog(data)
    await app.ctx.services.kernel.redis.incr(VERSION_KEY)  # another process bumped the version
    monkeypatch.setattr(cache, "recheck", 0.0)  # the interval has passed
    assert (await client.get("/api/v1/items/360500-MZ-001")).json()["promised_days"] == 2


async def test_repeated_reads_do_not_touch_the_database(client, catalog, monkeypatch):
    from models import catalog as catalog_models

    first = (await client.get("/api/v1/items/360500-MZ-001")).json()

    async def no_database(*_args, **_kwargs):
        raise AssertionError("the database was queried for a cached answer")

    monkeypatch.setattr(catalog_models, "item_with_guide", no_database)
    assert (await client.get("/api/v1/items/360500-MZ-001")).json() == first


async def test_workers_share_answers_through_redis(client, catalog, app):
    await client.get("/api/v1/items/360500-MZ-001")
    keys = [k.decode() async for k in app.ctx.services.kernel.redis.scan_iter("catalog:*:item:*")]
    assert len(keys) == 1
    # a worker with an empty memory takes the shared answer: poison it in Redis and read it back
    await app.ctx.services.kernel.redis.set(keys[0], b'{"code":"from-redis"}')
    app.ctx.services.catalog._local.clear()
    assert (await client.get("/api/v1/items/360500-MZ-001")).json() == {"code": "from-redis"}


@pytest.mark.parametrize(
    ("path", "status", "code", "detail"),
    [
        ("/api/v1/items/NOPE-000", 404, "item_not_found", "没有这个事项"),
        ("/api/v1/items/" + "X" * 65, 404, "item_not_found", "没有这个事项"),
        ("/api/v1/points/NOPE", 404, "point_not_found", "没有这个服务网点"),
        ("/api/v1/items?department=nope", 422, "unknown_filter_value", "没有这个部门"),
        ("/api/v1/points?district=999999", 422, "unknown_filter_value", "没有这个区县"),
        ("/api/v1/points?community=000000000000", 422, "unknown_filter_value", "没有这个社区"),
        ("/api/v1/points?near=27.8,114.9&cursor=eyJvZmZzZXQiOi0xfQ", 422, "invalid_cursor", "无效的分页游标"),
    ],
)
async def test_catalogue_errors_keep_their_codes_and_messages(client, catalog, path, status, code, detail):
    r = await client.get(path)
    body = r.json()
    assert (r.status_code, body["status"], body["code"], body["detail"]) == (status, status, code, detail)
    if status == 422:
        assert [e["message"] for e in body["errors"]] == [detail]
