"""Fixtures for the outside-system tests: a fake provider on 127.0.0.1 and an isolated fakeredis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import stamina
from fakeredis import FakeAsyncRedis
from fakeredis import FakeServer as FakeRedisServer

from tests.integrations.fakeserver import FakeServer

PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not stand between the clients and the fake on 127.0.0.1."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _retries_without_backoff() -> Iterator[None]:
    """stamina's test mode, capped: every retry the code asks for happens, none sleeps first."""
    with stamina.set_testing(True, attempts=10, cap=True):
        yield


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake(_fake_server: FakeServer) -> FakeServer:
    """The fake provider on 127.0.0.1, with no routes and no recorded requests."""
    _fake_server.reset()
    return _fake_server


@pytest.fixture
async def redis() -> AsyncIterator[FakeAsyncRedis]:
    client = FakeAsyncRedis(server=FakeRedisServer(), decode_responses=False)
    yield client
    await client.aclose()
