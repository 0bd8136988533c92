"""E-licence library: the signed sandbox, the trust list file and the HTTP client against a fake library."""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.kit import clock
from api.kit.errors import UpstreamError, UpstreamTimeout
from integrations.elicence.base import LibraryLicence, check_signature, load_issuers
from integrations.elicence.http import HttpLibrary
from integrations.elicence.sandbox import (
    EXPIRING_IN_DAYS,
    SANDBOX_ISSUERS,
    UNTRUSTED_ISSUER,
    SandboxLibrary,
    sandbox_licences,
    sign,
)
from integrations.http import longest_call
from integrations.population.sandbox import SANDBOX_PEOPLE
from tests.integrations.fakeserver import FakeServer, Reply, Seen
from tests.support.settings import settings_for

API_KEY = "lic-key-3f9e-never-shown"
QUERY = "/v1/licences/query"
ZHANG = ("张三", "360502198803152015")
LI = ("李娟", "360521199207084021")
WANG = ("王五", "360502197505206113")
ZHAO_ID = "360502199001010028"
QIAN_ID = "360521198506120032"
CHU_ID = "360504200307180095"
TODAY = date(2026, 5, 1)


def one(records: list[LibraryLicence], id_number: str, type_code: str) -> LibraryLicence:
    [record] = [r for r in records if r.holder_id_number == id_number and r.type == type_code]
    return record


# ---- sandbox --------------------------------------------------------------------------------------------


async def test_every_sandbox_person_has_an_id_card_and_a_household_register() -> None:
    library = SandboxLibrary()
    for person in SANDBOX_PEOPLE:
        mine = await library.licences_of(person["name"], person["id_number"])
        types = {r.type for r in mine}
        assert {"id_card", "household_register"} <= types, person["name"]
        assert all(r.holder_name == person["name"] for r in mine)
        assert all(r.holder_id_number == person["id_number"] for r in mine)
        card = next(r for r in mine if r.type == "id_card")
        assert card.number == person["id_number"]


def test_sandbox_ids_are_unique_stable_and_show_nothing_of_the_holder() -> None:
    records = sandbox_licences(TODAY)
    ids = [r.id for r in records]
    assert len(set(ids)) == len(ids)
    assert [r.id for r in sandbox_licences(TODAY)] == ids  # the same on every start
    for record in records:
        assert record.holder_id_number not in record.id
        assert record.holder_id_number[-6:] not in record.id


def test_every_sandbox_signature_checks_except_the_untrusted_issuers() -> None:
    records = sandbox_licences(TODAY)
    untrusted = [r for r in records if r.issuer == UNTRUSTED_ISSUER]
    assert untrusted  # 褚子轩's driving licence is there to show it
    assert {r.holder_id_number for r in untrusted} == {CHU_ID}
    for record in records:
        expected = "unknown_issuer" if record.issuer == UNTRUSTED_ISSUER else "ok"
        assert check_signature(record, SANDBOX_ISSUERS) == expected, (record.type, record.holder_name)


def test_the_status_is_not_signed_by_the_issuer() -> None:
    record = one(sandbox_licences(TODAY), ZHANG[1], "id_card")
    for status in ("revoked", "suspended", "valid"):
        assert check_signature(dataclasses.replace(record, status=status), SANDBOX_ISSUERS) == "ok"


@pytest.mark.parametrize(
    "change",
    [
        {"holder_name": "张四"},
        {"holder_id_number": "360502198803152023"},
        {"number": "360502198803152016"},
        {"valid_until": date(2099, 1, 1)},
        {"valid_from": date(2000, 1, 1)},
        {"data": {"gender": "male", "birth_date": "1988-03-15", "address": "江西省新余市渝水区某处"}},
        {"issuer_name": "新余市某局"},
        {"type": "driving_licence"},
        {"id": "LIC0000000000000000000"},
        {"issuer": "XY-AMR"},  # another trusted issuer's name on the PSB's signature
    ],
)
def test_a_tampered_record_is_bad(change: dict[str, Any]) -> None:
    record = one(sandbox_licences(TODAY), ZHANG[1], "id_card")
    assert check_signature(record, SANDBOX_ISSUERS) == "ok"
    assert check_signature(dataclasses.replace(record, **change), SANDBOX_ISSUERS) == "bad"


def test_an_unsigned_or_badly_signed_record_is_bad() -> None:
    record = one(sandbox_licences(TODAY), ZHANG[1], "driving_licence")
    assert check_signature(dataclasses.replace(record, signature=""), SANDBOX_ISSUERS) == "bad"
    assert check_signature(dataclasses.replace(record, signature="not base64!"), SANDBOX_ISSUERS) == "bad"
    assert check_signature(dataclasses.replace(record, signature="AAAA"), SANDBOX_ISSUERS) == "bad"
    assert check_signature(dataclasses.replace(record, alg="SM2"), SANDBOX_ISSUERS) == "bad"
    # signed, but by a key that is not the issuer's
    forged = sign(record, Ed25519PrivateKey.generate())
    assert forged.signature != record.signature
    assert check_signature(forged, SANDBOX_ISSUERS) == "bad"
    # an unknown issuer is told apart from a bad signature
    assert check_signature(record, {}) == "unknown_issuer"


async def test_sandbox_holds_a_record_as_put() -> None:
    library = SandboxLibrary()
    record = library.find(ZHANG[1], "id_card")
    library.put(dataclasses.replace(record, holder_name="张四", signature=""))
    held = await library.licence(record.id)
    assert held is not None
    assert held.holder_name == "张四"
    assert check_signature(held, SANDBOX_ISSUERS) == "bad"


async def test_set_status_changes_what_the_library_answers() -> None:
    library = SandboxLibrary()
    record = library.find(ZHANG[1], "driving_licence")
    assert record.status == "valid"
    changed = library.set_status(record.id, "revoked")
    assert changed.status == "revoked"
    now = await library.licence(record.id)
    assert now is not None and now.status == "revoked"
    mine = await library.licences_of(*ZHANG)
    assert next(r for r in mine if r.id == record.id).status == "revoked"
    library.set_status(record.id, "valid")
    back = await library.licence(record.id)
    assert back is not None and back.status == "valid"
    assert check_signature(back, SANDBOX_ISSUERS) == "ok"
    with pytest.raises(KeyError):
        library.set_status("LIC-NOT-HELD", "revoked")
    assert await SandboxLibrary().licence(record.id) == record  # another library is not changed


async def test_seeded_statuses() -> None:
    library = SandboxLibrary()
    suspended = library.find(QIAN_ID, "driving_licence")
    revoked = library.find(ZHAO_ID, "business_licence")
    assert (suspended.holder_name, suspended.status) == ("钱磊", "suspended")
    assert (revoked.holder_name, revoked.status) == ("赵敏", "revoked")
    others = [r for r in sandbox_licences(TODAY) if r.id not in {suspended.id, revoked.id}]
    assert others and all(r.status == "valid" for r in others)
    got = await library.licence(suspended.id)
    assert got is not None and got.status == "suspended"


async def test_licences_of_needs_the_right_name_and_number() -> None:
    library = SandboxLibrary()
    assert len(await library.licences_of(*ZHANG)) >= 5
    assert await library.licences_of("李四", ZHANG[1]) == []
    assert await library.licences_of(LI[0], ZHANG[1]) == []  # someone else's name
    assert await library.licences_of(ZHANG[0], "110101199003070011") == []
    assert await library.licences_of(ZHANG[0], "") == []
    assert await library.licence("LIC-NOT-HELD") is None
    # the X check character in either case
    assert {r.type for r in await library.licences_of("周婷婷", "36050420000229004x")} >= {"id_card"}


async def test_a_library_that_is_down_fails_every_call() -> None:
    library = SandboxLibrary()
    record = library.find(ZHANG[1], "id_card")
    library.down = True
    with pytest.raises(UpstreamError) as err:
        await library.licences_of(*ZHANG)
    assert err.value.status == 502
    with pytest.raises(UpstreamError):
        await library.licence(record.id)
    library.down = False
    assert await library.licence(record.id) == record


def test_one_licence_of_each_demo_person_expires_soon() -> None:
    records = sandbox_licences(TODAY)
    for _name, id_number in (ZHANG, LI, WANG):
        mine = [r for r in records if r.holder_id_number == id_number]
        soon = [
            r for r in mine if r.valid_until is not None and TODAY <= r.valid_until <= TODAY + timedelta(30)
        ]
        assert [(r.type, r.valid_until) for r in soon] == [
            ("social_security_card", TODAY + timedelta(days=EXPIRING_IN_DAYS))
        ]
        assert check_signature(soon[0], SANDBOX_ISSUERS) == "ok"  # signed with its new end
    # the dates are fixed otherwise: one driving licence already expired
    assert one(records, WANG[1], "driving_licence").valid_until == date(2024, 1, 10)


def test_the_expiring_licence_follows_the_clock() -> None:
    clock.use(lambda: datetime(2027, 1, 15, 9, 30, tzinfo=clock.CITY_TZ))
    try:
        library = SandboxLibrary()
    finally:
        clock.use(None)
    card = library.find(ZHANG[1], "social_security_card")
    assert card.valid_until == date(2027, 1, 15) + timedelta(days=EXPIRING_IN_DAYS)


# ---- the trust list file --------------------------------------------------------------------------------


def write_issuers(path: Path, data: Any) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


def issuers_json() -> dict[str, dict[str, str]]:
    return {
        code: {"name": key.name, "alg": key.alg, "public_key": base64.b64encode(key.public_key).decode()}
        for code, key in SANDBOX_ISSUERS.items()
    }


def test_load_issuers_reads_a_good_file(tmp_path: Path) -> None:
    loaded = load_issuers(write_issuers(tmp_path / "issuers.json", issuers_json()))
    assert loaded == SANDBOX_ISSUERS
    record = one(sandbox_licences(TODAY), ZHANG[1], "id_card")
    assert check_signature(record, loaded) == "ok"
    only_psb = load_issuers(write_issuers(tmp_path / "psb.json", {"XY-PSB": issuers_json()["XY-PSB"]}))
    assert check_signature(record, only_psb) == "ok"
    assert check_signature(one(sandbox_licences(TODAY), ZHANG[1], "driving_licence"), only_psb) == (
        "unknown_issuer"
    )


def test_load_issuers_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_issuers(tmp_path / "nowhere.json")


def test_load_issuers_not_json(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text("XY-PSB = abc\n")
    with pytest.raises(ValueError, match="not JSON"):
        load_issuers(path)


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "新余市公安局", "alg": "Ed25519", "public_key": "not base64!"},
        {"name": "新余市公安局", "alg": "Ed25519", "public_key": base64.b64encode(b"short").decode()},
        {"name": "新余市公安局", "alg": "RSA", "public_key": issuers_json()["XY-PSB"]["public_key"]},
        {"name": "新余市公安局", "alg": "Ed25519"},
        {"alg": "Ed25519", "public_key": issuers_json()["XY-PSB"]["public_key"]},
        {"name": "新余市公安局", "alg": "Ed25519", "public_key": 12345},
        "just a string",
    ],
)
def test_load_issuers_bad_key(tmp_path: Path, entry: Any) -> None:
    data = {**issuers_json(), "XY-PSB": entry}
    with pytest.raises(ValueError, match="XY-PSB"):
        load_issuers(write_issuers(tmp_path / "issuers.json", data))


@pytest.mark.parametrize("data", [{}, [], ["XY-PSB"], "XY-PSB"])
def test_load_issuers_names_no_issuer(tmp_path: Path, data: Any) -> None:
    with pytest.raises(ValueError):
        load_issuers(write_issuers(tmp_path / "issuers.json", data))


# ---- HTTP client ----------------------------------------------------------------------------------------


def wire(record: LibraryLicence, **change: Any) -> dict[str, Any]:
    """A record as the library sends it (written out here, independently of the client)."""
    out = {
        "id": record.id,
        "type": record.type,
        "issuer": record.issuer,
        "issuer_name": record.issuer_name,
        "number": record.number,
        "holder_name": record.holder_name,
        "holder_id_number": record.holder_id_number,
        "valid_from": record.valid_from.isoformat(),
        "valid_until": record.valid_until.isoformat() if record.valid_until else None,
        "data": dict(record.data),
        "alg": record.alg,
        "signature": record.signature,
        "status": record.status,
    }
    out.update(change)
    return out


def zhang_records() -> list[LibraryLicence]:
    return [r for r in sandbox_licences(TODAY) if r.holder_id_number == ZHANG[1]]


def licence_path(licence_id: str) -> str:
    return f"/v1/licences/{licence_id}"


@pytest.fixture
async def http_library(fake: FakeServer) -> AsyncIterator[HttpLibrary]:
    settings = settings_for(
        LICENCES__PROVIDER="http",
        LICENCES__BASE_URL=fake.url,
        LICENCES__API_KEY=API_KEY,
        LICENCES__TIMEOUT="0.3",
    )
    library = HttpLibrary(settings.licences)
    yield library
    await library.aclose()


def assert_no_personal_data(seen: Seen) -> None:
    for person in (ZHANG[0], ZHANG[1], "%E5%BC%A0"):  # the name percent-encoded too
        assert person not in seen.path
        assert all(person not in k and person not in v for k, v in seen.query.items())


async def test_http_query(fake: FakeServer, http_library: HttpLibrary) -> None:
    records = zhang_records()
    fake.route("POST", QUERY, Reply(200, {"licences": [wire(r) for r in records], "request_no": "Q1"}))
    got = await http_library.licences_of(*ZHANG)
    assert got == records
    assert {type(r.valid_from) for r in got} == {date}
    assert any(r.valid_until is None for r in got) and any(isinstance(r.valid_until, date) for r in got)
    [seen] = fake.hits(QUERY)
    assert seen.method == "POST"
    assert seen.query == {}
    assert_no_personal_data(seen)
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.headers["content-type"].startswith("application/json")
    assert seen.json() == {"holder_name": "张三", "holder_id_number": "360502198803152015"}


async def test_http_query_none_held(fake: FakeServer, http_library: HttpLibrary) -> None:
    fake.route("POST", QUERY, Reply(200, {"licences": []}))
    assert await http_library.licences_of(*ZHANG) == []


async def test_http_query_ignores_keys_beyond_the_protocol(
    fake: FakeServer, http_library: HttpLibrary
) -> None:
    record = zhang_records()[0]
    fake.route("POST", QUERY, Reply(200, {"licences": [wire(record, photo="data:...", version=3)]}))
    assert await http_library.licences_of(*ZHANG) == [record]


async def test_http_query_is_retried_like_a_read(fake: FakeServer, http_library: HttpLibrary) -> None:
    records = zhang_records()
    answers = iter([Reply(503, {"error": "busy"}), Reply(200, {"licences": [wire(r) for r in records]})])
    fake.route("POST", QUERY, lambda seen: next(answers))
    assert await http_library.licences_of(*ZHANG) == records
    assert len(fake.hits(QUERY)) == 2


async def test_http_query_of_someone_elses_licence(fake: FakeServer, http_library: HttpLibrary) -> None:
    theirs = [r for r in sandbox_licences(TODAY) if r.holder_id_number == LI[1]]
    fake.route("POST", QUERY, Reply(200, {"licences": [wire(r) for r in zhang_records() + theirs]}))
    with pytest.raises(UpstreamError) as err:
        await http_library.licences_of(*ZHANG)
    assert LI[1] not in str(err.value) and ZHANG[1] not in str(err.value)


async def test_http_one_licence(fake: FakeServer, http_library: HttpLibrary) -> None:
    record = one(sandbox_licences(TODAY), QIAN_ID, "driving_licence")
    fake.route("GET", licence_path(record.id), Reply(200, {"licence": wire(record)}))
    got = await http_library.licence(record.id)
    assert got == record
    assert got is not None and got.status == "suspended"
    [seen] = fake.hits(licence_path(record.id))
    assert seen.method == "GET"
    assert seen.query == {}
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.body == b""


async def test_http_one_licence_id_is_percent_encoded(fake: FakeServer, http_library: HttpLibrary) -> None:
    opaque = "LIC/2026 a?b#c&d=证"
    record = dataclasses.replace(zhang_records()[0], id=opaque)
    encoded = "LIC%2F2026%20a%3Fb%23c%26d%3D%E8%AF%81"
    fake.route("GET", licence_path(encoded), Reply(200, {"licence": wire(record)}))
    assert await http_library.licence(opaque) == record
    [seen] = fake.hits(licence_path(encoded))
    assert seen.query == {}


@pytest.mark.parametrize("licence_id", ["", ".", ".."])
async def test_http_ids_no_path_can_name(
    fake: FakeServer, http_library: HttpLibrary, licence_id: str
) -> None:
    fake.route("GET", "/v1", Reply(200, {"licence": wire(zhang_records()[0])}))
    fake.route("GET", "/v1/licences", Reply(200, {"licence": wire(zhang_records()[0])}))
    fake.route("GET", "/v1/licences/", Reply(200, {"licence": wire(zhang_records()[0])}))
    assert await http_library.licence(licence_id) is None
    assert fake.seen == []


async def test_http_one_licence_not_found(fake: FakeServer, http_library: HttpLibrary) -> None:
    fake.route("GET", licence_path("LICGONE"), Reply(404, {"error": "not_found"}))
    assert await http_library.licence("LICGONE") is None
    assert len(fake.hits(licence_path("LICGONE"))) == 1


async def test_http_a_404_of_another_kind_is_not_a_missing_licence(
    fake: FakeServer, http_library: HttpLibrary
) -> None:
    # a wrong base_url answers 404 for every path: that must not make every licence vanish
    fake.route("GET", licence_path("LIC1"), Reply(404, body=b"<html>Not Found</html>"))
    with pytest.raises(UpstreamError):
        await http_library.licence("LIC1")
    with pytest.raises(UpstreamError):
        await http_library.licence("LIC-NO-ROUTE")  # the fake's own 404 {"error": "no route"}


async def test_http_one_licence_of_another_id(fake: FakeServer, http_library: HttpLibrary) -> None:
    record = zhang_records()[0]
    fake.route("GET", licence_path("LICASKED"), Reply(200, {"licence": wire(record)}))
    with pytest.raises(UpstreamError):
        await http_library.licence("LICASKED")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 500, 502, 503])
async def test_http_query_error_status(
    fake: FakeServer, http_library: HttpLibrary, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    fake.route("POST", QUERY, Reply(status, {"licences": [], "error": "x"}))
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(UpstreamError) as err:
            await http_library.licences_of(*ZHANG)
    assert err.value.status == 502
    logged = " ".join(r.getMessage() for r in caplog.records)
    for text in (str(err.value), logged):
        assert API_KEY not in text and ZHANG[1] not in text and ZHANG[0] not in text


@pytest.mark.parametrize("status", [401, 500, 503])
async def test_http_one_licence_error_status(
    fake: FakeServer, http_library: HttpLibrary, status: int
) -> None:
    record = zhang_records()[0]
    fake.route("GET", licence_path(record.id), Reply(status, {"licence": wire(record)}))
    with pytest.raises(UpstreamError) as err:
        await http_library.licence(record.id)
    assert API_KEY not in str(err.value)


def _record(**change: Any) -> dict[str, Any]:
    return wire(zhang_records()[0], **change)


def _without(key: str) -> dict[str, Any]:
    out = _record()
    del out[key]
    return out


MALFORMED_RECORDS = [
    pytest.param(_without("status"), id="missing-status"),
    pytest.param(_without("signature"), id="missing-signature"),
    pytest.param(_without("valid_until"), id="missing-valid_until"),
    pytest.param(_without("data"), id="missing-data"),
    pytest.param(_record(valid_from="2020-13-01"), id="no-such-month"),
    pytest.param(_record(valid_from="2021-02-29"), id="no-such-day"),
    pytest.param(_record(valid_from="2020/01/01"), id="slashes"),
    pytest.param(_record(valid_from="20200101"), id="basic-format"),
    pytest.param(_record(valid_from="2020-01-01T00:00:00"), id="a-time"),
    pytest.param(_record(valid_until=1893456000), id="timestamp"),
    pytest.param(_record(valid_until=""), id="empty-date"),
    pytest.param(_record(status="expired"), id="unknown-status"),
    pytest.param(_record(status="VALID"), id="status-case"),
    pytest.param(_record(number=360502198803152015), id="number-not-a-string"),
    pytest.param(_record(data={"gender": 1}), id="data-not-strings"),
    pytest.param(_record(data=[["gender", "male"]]), id="data-not-an-object"),
    pytest.param(_record(id=""), id="empty-id"),
    pytest.param(_record(holder_name=None), id="null-name"),
]


@pytest.mark.parametrize("record", MALFORMED_RECORDS)
async def test_http_query_malformed_record(
    fake: FakeServer, http_library: HttpLibrary, record: dict[str, Any]
) -> None:
    fake.route("POST", QUERY, Reply(200, {"licences": [_record(), record]}))
    with pytest.raises(UpstreamError, match="无法识别"):
        await http_library.licences_of(*ZHANG)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(200, {"licences": _record()}), id="not-a-list"),
        pytest.param(Reply(200, {"licences": None}), id="null"),
        pytest.param(Reply(200, {"licence": [_record()]}), id="other-key"),
        pytest.param(Reply(200, [_record()]), id="bare-list"),
        pytest.param(Reply(200, {"licences": ["LIC1"]}), id="ids-only"),
        pytest.param(Reply(200, body=b"licences: none"), id="not-json"),
    ],
)
async def test_http_query_malformed_answer(fake: FakeServer, http_library: HttpLibrary, reply: Reply) -> None:
    fake.route("POST", QUERY, reply)
    with pytest.raises(UpstreamError):
        await http_library.licences_of(*ZHANG)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"licences": [_record()]}, id="a-list"),
        pytest.param({"licence": None}, id="null"),
        pytest.param({"licence": _without("holder_id_number")}, id="missing-key"),
        pytest.param({"licence": _record(valid_until="长期")}, id="bad-date"),
        pytest.param({"licence": _record(status="revoked ")}, id="unknown-status"),
        pytest.param(_record(), id="bare-record"),
    ],
)
async def test_http_one_licence_malformed(fake: FakeServer, http_library: HttpLibrary, answer: Any) -> None:
    record_id = zhang_records()[0].id
    fake.route("GET", licence_path(record_id), Reply(200, answer))
    with pytest.raises(UpstreamError):
        await http_library.licence(record_id)


async def test_http_slow_query(fake: FakeServer, http_library: HttpLibrary) -> None:
    fake.route("POST", QUERY, Reply(200, {"licences": []}, delay=3))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as err:
        await http_library.licences_of(*ZHANG)
    assert err.value.status == 504
    assert time.monotonic() - started < longest_call(0.3) + 0.5


async def test_http_slow_licence(fake: FakeServer, http_library: HttpLibrary) -> None:
    record = zhang_records()[0]
    fake.route("GET", licence_path(record.id), Reply(200, {"licence": wire(record)}, trickle=0.05))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await http_library.licence(record.id)
    assert time.monotonic() - started < longest_call(0.3) + 0.5


async def test_http_redirect_not_followed(fake: FakeServer, http_library: HttpLibrary) -> None:
    record = zhang_records()[0]
    fake.route("POST", QUERY, Reply(302, {}, headers={"Location": "/elsewhere"}))
    fake.route("GET", licence_path(record.id), Reply(307, {}, headers={"Location": "/elsewhere"}))
    fake.route("GET", "/elsewhere", Reply(200, {"licence": wire(record), "licences": []}))
    fake.route("POST", "/elsewhere", Reply(200, {"licences": []}))
    with pytest.raises(UpstreamError, match="重定向"):
        await http_library.licences_of(*ZHANG)
    with pytest.raises(UpstreamError, match="重定向"):
        await http_library.licence(record.id)
    assert fake.hits("/elsewhere") == []


async def test_http_records_stay_verifiable(fake: FakeServer, http_library: HttpLibrary) -> None:
    records = zhang_records()
    fake.route("POST", QUERY, Reply(200, {"licences": [wire(r) for r in records]}))
    got = await http_library.licences_of(*ZHANG)
    assert len(got) == len(records) >= 5
    assert all(check_signature(r, SANDBOX_ISSUERS) == "ok" for r in got)

    card = one(records, ZHANG[1], "id_card")
    fake.route("GET", licence_path(card.id), Reply(200, {"licence": wire(card)}))
    fetched = await http_library.licence(card.id)
    assert fetched is not None and check_signature(fetched, SANDBOX_ISSUERS) == "ok"

    # one character of the name changed on the way: the client passes it on, the check catches it
    fake.route("GET", licence_path(card.id), Reply(200, {"licence": wire(card, holder_name="张叁")}))
    tampered = await http_library.licence(card.id)
    assert tampered is not None and tampered.holder_name == "张叁"
    assert check_signature(tampered, SANDBOX_ISSUERS) == "bad"

    # the library changes the status, not the issuer: a revoked record still checks
    fake.route("GET", licence_path(card.id), Reply(200, {"licence": wire(card, status="revoked")}))
    revoked = await http_library.licence(card.id)
    assert revoked is not None and revoked.status == "revoked"
    assert check_signature(revoked, SANDBOX_ISSUERS) == "ok"

    untrusted = one(sandbox_licences(TODAY), CHU_ID, "driving_licence")
    fake.route("GET", licence_path(untrusted.id), Reply(200, {"licence": wire(untrusted)}))
    unknown = await http_library.licence(untrusted.id)
    assert unknown is not None and check_signature(unknown, SANDBOX_ISSUERS) == "unknown_issuer"


async def test_http_uses_a_client_it_is_given_and_leaves_it_open(fake: FakeServer) -> None:
    settings = settings_for(LICENCES__PROVIDER="http", LICENCES__BASE_URL=fake.url, LICENCES__API_KEY=API_KEY)
    fake.route("POST", QUERY, Reply(200, {"licences": []}))
    async with httpx.AsyncClient(base_url=fake.url, headers={"X-Caller": "shared"}) as client:
        library = HttpLibrary(settings.licences, client=client)
        assert await library.licences_of(*ZHANG) == []
        await library.aclose()
        assert not client.is_closed
    [seen] = fake.hits(QUERY)
    assert seen.headers["x-caller"] == "shared"
    assert seen.headers["x-api-key"] == API_KEY
