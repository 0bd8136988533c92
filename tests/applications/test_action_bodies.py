"""The clerk actions' bodies: one schema per action told apart by `action` (a discriminated union), errors
named by the body's own fields, and an OpenAPI document that shows which fields each action takes."""

from __future__ import annotations

from api.applications import states
from api.applications.schemas import ActionIn
from tests.support.cases import ACTION_FIELDS, act, case_in, make_world


def test_every_clerk_action_has_a_body_and_each_example_fits_it():
    for action in states.WORK_ACTIONS:
        body = ActionIn.model_validate({"action": action, **ACTION_FIELDS[action]}).root
        assert body.action == action


async def test_a_missing_or_unknown_action_is_named_with_the_actions_there_are(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "submitted")
    url = f"/api/v1/work/applications/{case['id']}/actions"
    r = await client.post(url, json={}, headers=w.admin)
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    assert r.json()["errors"] == [{"field": "action", "message": "必填"}]
    r = await client.post(url, json={"action": "delete", "reason": "无"}, headers=w.admin)
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "action" and error["message"].startswith("不是允许的取值，可选：")
    for action in states.WORK_ACTIONS:
        assert repr(action) in error["message"]
    assert "'withdraw'" not in error["message"]  # the applicant's own actions have routes of their own


async def test_a_field_an_action_needs_is_named_in_its_words(app, client):
    w = await make_world(app, client, second_resident=False)
    review = await case_in(w, "in_review")
    r = await act(w.client, w.staff, review["id"], "reject")
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "reason", "message": "须写明理由"},
        {"field": "legal_basis", "message": "不予批准须写明法律依据"},
    ]
    r = await act(w.client, w.staff, review["id"], "suspend", reason=None, expected_days=3)
    assert r.json()["errors"] == [{"field": "reason", "message": "特别程序须写明理由和预计工作日数"}]
    submitted = await case_in(w, "submitted")
    r = await act(w.client, w.grid, submitted["id"], "return")
    assert r.json()["errors"] == [
        {"field": "missing_materials", "message": "退回补正须列出全部缺少或有误的材料"}
    ]
    # a nested field keeps its path, without the action in front of it
    r = await act(w.client, w.grid, submitted["id"], "return", missing_materials=[{"material_code": "M01"}])
    assert r.json()["errors"] == [{"field": "missing_materials.0.reason", "message": "必填"}]


async def test_an_action_takes_only_its_own_fields(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "submitted")
    r = await act(w.client, w.grid, case["id"], "accept", reason="不属于本事项受理范围")
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "reason", "message": "不允许的字段"}]
    r = await act(w.client, w.grid, case["id"], "accept", note="材料齐全")
    assert r.status_code == 200 and r.json()["events"][-1]["note"] == {"note": "材料齐全"}


async def test_openapi_shows_one_schema_per_action(client):
    spec = (await client.get("/docs/openapi.json")).json()
    operation = spec["paths"]["/api/v1/work/applications/{application_id}/actions"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = spec["components"]["schemas"]
    union = schemas[ref.rsplit("/", 1)[-1]]
    assert union["discriminator"]["propertyName"] == "action"
    mapping = union["discriminator"]["mapping"]
    assert set(mapping) == set(states.WORK_ACTIONS)
    assert [o["$ref"] for o in union["oneOf"]] == [mapping[a] for a in states.WORK_ACTIONS]

    def member(action: str) -> dict:
        return schemas[mapping[action].rsplit("/", 1)[-1]]

    assert set(member("reject")["required"]) == {"action", "reason", "legal_basis"}
    assert set(member("suspend")["required"]) == {"action", "reason", "expected_days"}
    assert set(member("return")["required"]) == {"action", "missing_materials"}
    assert member("return")["properties"]["missing_materials"]["items"]["$ref"].endswith("/MissingMaterial")
    assert "MissingMaterial" in schemas
    assert member("accept")["required"] == ["action"]
    assert set(member("accept")["properties"]) == {"action", "note"}
    assert {"tracking_no", "recipient", "photo"} <= set(member("deliver")["properties"])
    for action in states.WORK_ACTIONS:
        assert member(action)["additionalProperties"] is False
        assert member(action)["properties"]["action"]["enum"] == [action]  # OpenAPI 3.0 has no const
    assert {"404", "409", "422", "401", "403"} <= set(operation["responses"])
