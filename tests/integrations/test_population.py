"""Population database: the seeded sandbox and the HTTP client against a fake gateway on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import date

import pytest

from api.kit.errors import UpstreamError, UpstreamTimeout
from api.kit.pii import is_valid_id_number as valid_id_number
from integrations.population import SANDBOX_PEOPLE, HttpPopulation, SandboxPopulation
from tests.integrations.fakeserver import FakeServer, Reply
from tests.support.settings import settings_for

API_KEY = "pop-key-7a1c-never-shown"
VERIFY = "/v1/identity/verify"
DEMO = [
    ("张三", "360502198803152015"),
    ("李娟", "360521199207084021"),
    ("王五", "360502197505206113"),
]


def gb11643_ok(id_number: str) -> bool:
    """Written out again here, independently of integrations.population."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(d) * w for d, w in zip(id_number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == id_number[17]


# ---- seeded people ----------------------------------------------------------------------------------


def test_sandbox_people_are_valid_and_consistent() -> None:
    assert len(SANDBOX_PEOPLE) >= 10
    ids = [p["id_number"] for p in SANDBOX_PEOPLE]
    assert len(set(ids)) == len(ids)
    for name, id_number in DEMO:
        assert {"name": name, "id_number": id_number}.items() <= next(
            p for p in SANDBOX_PEOPLE if p["id_number"] == id_number
        ).items()
    assert any(i.endswith("X") for i in ids)
    for person in SANDBOX_PEOPLE:
        id_number = person["id_number"]
        assert set(person) == {"name", "id_number", "gender", "birth_date", "address"}
        assert id_number[:6] in {"360502", "360521", "360503", "360504", "360505"}
        assert gb11643_ok(id_number), id_number
        assert valid_id_number(id_number)
        born = date.fromisoformat(person["birth_date"])
        assert id_number[6:14] == born.strftime("%Y%m%d")
        assert person["gender"] == ("male" if int(id_number[16]) % 2 else "female")
        assert person["address"].startswith("江西省新余市")


def test_check_digit_rejects_the_known_bad_number() -> None:
    assert not valid_id_number("360502198803152016")
    assert not gb11643_ok("360502198803152016")
    assert valid_id_number("36050420000229004x")  # a lower-case x is still the X check character


@pytest.mark.parametrize(("name", "id_number"), DEMO)
async def test_sandbox_match(name: str, id_number: str) -> None:
    assert await SandboxPopulation().verify(name, id_number) == "match"


async def test_sandbox_every_seeded_person_matches_and_only_under_his_name() -> None:
    population = SandboxPopulation()
    for person in SANDBOX_PEOPLE:
        assert await population.verify(person["name"], person["id_number"]) == "match"
        assert await population.verify(person["name"] + "某", person["id_number"]) == "mismatch"


async def test_sandbox_mismatch_and_not_found() -> None:
    population = SandboxPopulation()
    assert await population.verify("李四", "360502198803152015") == "mismatch"
    assert await population.verify("李娟", "360502198803152015") == "mismatch"  # someone else's number
    assert await population.verify("张三", "360502198803152016") == "not_found"  # bad check digit
    assert await population.verify("张三", "110101199003070011") == "not_found"
    assert await population.verify("张三", "") == "not_found"
    assert await population.verify(" 张三 ", "360502198803152015") == "match"
    assert await population.verify("周婷婷", "36050420000229004x") == "match"


async def test_sandbox_with_own_people() -> None:
    population = SandboxPopulation([{"name": "测试", "id_number": "360502199001010028"}])
    assert await population.verify("测试", "360502199001010028") == "match"
    assert await population.verify("张三", "360502198803152015") == "not_found"


# ---- HTTP client ------------------------------------------------------------------------------------


@pytest.fixture
async def http_population(fake: FakeServer) -> AsyncIterator[HttpPopulation]:
    settings = settings_for(
        POPULATION__PROVIDER="http",
        POPULATION__BASE_URL=fake.url,
        POPULATION__API_KEY=API_KEY,
        POPULATION__TIMEOUT="0.3",
    )
    population = HttpPopulation(settings.population)
    yield population
    await population.aclose()


@pytest.mark.parametrize("result", ["match", "mismatch", "not_found"])
async def test_http_verify(fake: FakeServer, http_population: HttpPopulation, result: str) -> None:
    fake.route("POST", VERIFY, Reply(200, {"result": result, "request_no": "R1"}))
    assert await http_population.verify("张三", "360502198803152015") == result
    [seen] = fake.hits(VERIFY)
    assert seen.method == "POST"
    assert seen.query == {}  # personal data never in the URL
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.json() == {"name": "张三", "id_number": "360502198803152015"}


@pytest.mark.parametrize("status", [401, 404, 500, 502])
async def test_http_error_status(fake: FakeServer, http_population: HttpPopulation, status: int) -> None:
    fake.route("POST", VERIFY, Reply(status, {"result": "match"}))
    with pytest.raises(UpstreamError) as err:
        await http_population.verify("张三", "360502198803152015")
    text = str(err.value)
    assert API_KEY not in text and "360502198803152015" not in text and "张三" not in text


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, body=b"match"),
        Reply(200, {"result": "yes"}),
        Reply(200, {"result": True}),
        Reply(200, {"matched": True}),
        Reply(200, {"result": None}),
    ],
)
async def test_http_malformed_answer(fake: FakeServer, http_population: HttpPopulation, reply: Reply) -> None:
    fake.route("POST", VERIFY, reply)
    with pytest.raises(UpstreamError):
        await http_population.verify("张三", "360502198803152015")


async def test_http_slow_answer(fake: FakeServer, http_population: HttpPopulation) -> None:
    fake.route("POST", VERIFY, Reply(200, {"result": "match"}, delay=3))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await http_population.verify("张三", "360502198803152015")
    assert time.monotonic() - started < 1.0


async def test_http_redirect_not_followed(fake: FakeServer, http_population: HttpPopulation) -> None:
    fake.route("POST", VERIFY, Reply(302, {}, headers={"Location": "/login"}))
    fake.route("GET", "/login", Reply(200, {"result": "match"}))
    fake.route("POST", "/login", Reply(200, {"result": "match"}))
    with pytest.raises(UpstreamError):
        await http_population.verify("张三", "360502198803152015")
    assert fake.hits("/login") == []


async def test_http_oversize_answer(fake: FakeServer, http_population: HttpPopulation) -> None:
    fake.route("POST", VERIFY, Reply(200, {"result": "match", "pad": "x" * 1_200_000}))
    with pytest.raises(UpstreamError, match="过大"):
        await http_population.verify("张三", "360502198803152015")
