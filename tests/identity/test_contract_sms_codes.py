"""Contract: POST /api/v1/auth/sms-codes {"phone", "purpose"} → 202 {"expires_in", "resend_after"}."""

from __future__ import annotations

import pytest

URL = "/api/v1/auth/sms-codes"


async def test_a_code_request_answers_202_with_expiry_and_resend_delay(client):
    r = await client.post(URL, json={"phone": "13800000001", "purpose": "login"})
    assert r.status_code == 202, r.text
    assert r.json() == {"expires_in": 300, "resend_after": 60}
    assert r.headers["content-type"].startswith("application/json")


async def test_known_and_unknown_phones_get_the_same_answer_for_every_purpose(client):
    answers = set()
    for phone, purpose in [
        ("13800000001", "login"),
        ("13800000002", "reset_password"),
        ("13800000003", "bind"),
    ]:
        r = await client.post(URL, json={"phone": phone, "purpose": purpose})
        assert r.status_code == 202, r.text
        answers.add(r.content)
    assert len(answers) == 1


@pytest.mark.parametrize(
    "phone",
    [
        "12800000001",  # 12x is not a mainland mobile prefix
        "1380000000",  # 10 digits
        "138000000012",  # 12 digits
        "1380000000a",  # a letter
        "+8613800000001",
        "138 0000 0001",
        "",
    ],
)
async def test_an_invalid_phone_is_422_naming_phone(client, phone):
    r = await client.post(URL, json={"phone": phone, "purpose": "login"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["status"] == 422 and body["code"] == "validation_failed"
    assert [e["field"] for e in body["errors"]] == ["phone"]


async def test_a_phone_given_as_a_number_is_422(client):
    r = await client.post(URL, json={"phone": 13800000001, "purpose": "login"})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["phone"]


async def test_an_unknown_purpose_is_422_naming_purpose(client):
    r = await client.post(URL, json={"phone": "13800000001", "purpose": "marketing"})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["purpose"]


async def test_missing_fields_are_422_naming_each(client):
    r = await client.post(URL, json={})
    assert r.status_code == 422
    assert sorted(e["field"] for e in r.json()["errors"]) == ["phone", "purpose"]


async def test_an_unknown_field_is_422(client):
    r = await client.post(URL, json={"phone": "13800000001", "purpose": "login", "channel": "app"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "channel", "message": "不允许的字段"}]


async def test_a_wrong_content_type_is_415(client):
    r = await client.post(
        URL, content=b'{"phone": "13800000001", "purpose": "login"}', headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    assert r.json()["code"] == "unsupported_media_type"
    r = await client.post(URL, data={"phone": "13800000001", "purpose": "login"})
    assert r.status_code == 415


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"phone": "13800000001",'])
async def test_a_body_that_is_not_json_is_422(client, raw):
    r = await client.post(URL, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body"


@pytest.mark.parametrize("raw", [b"[]", b'"13800000001"', b"null"])
async def test_json_that_is_not_an_object_is_422(client, raw):
    r = await client.post(URL, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body"


async def test_a_refused_request_sends_nothing(client):
    await client.post(URL, json={"phone": "13800000001", "purpose": "marketing"})
    sent = await client.get("/api/v1/sandbox/sms", params={"phone": "13800000001"})
    assert sent.status_code == 200 and sent.json() == {"items": []}


async def test_the_sandbox_shows_the_code_that_was_sent(client):
    await client.post(URL, json={"phone": "13800000001", "purpose": "login"})
    items = (await client.get("/api/v1/sandbox/sms", params={"phone": "13800000001"})).json()["items"]
    assert len(items) == 1
    assert set(items[0]) == {"phone", "text", "code", "sent_at"}
    assert items[0]["phone"] == "13800000001" and items[0]["code"] in items[0]["text"]
    r = await client.get("/api/v1/sandbox/sms", params={"phone": "1380000000"})
    assert r.status_code == 422
