"""The shared Redis connection of the session check (api/kit/multiplex.py), against a Redis-protocol server
this test starts on 127.0.0.1 (its replies, silences and hang-ups are the test's to choose), and against
the real Redis when the suite has one."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import hiredis
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.kit.multiplex import Multiplexed
from api.kit.versions import REVOKED_SESSION_KEY, VERSION_KEY, AccountVersions


def _encode(reply: Any) -> bytes:
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, Exception):
        return b"-" + str(reply).encode() + b"\r\n"
    if isinstance(reply, list):
        return b"*%d\r\n" % len(reply) + b"".join(_encode(r) for r in reply)
    data = reply if isinstance(reply, bytes) else str(reply).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class FakeRedis:
    """A server speaking Redis's protocol: `answer(command)` gives the reply, or `SILENT`: from then on that
    connection answers nothing more (replies keep their order, as Redis's do)."""

    SILENT = object()

    def __init__(self, answer: Callable[[list[bytes]], Any]) -> None:
        self.answer = answer
        self.commands: list[list[bytes]] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        parser = hiredis.Reader()
        stalled = False  # as a Redis busy with something: once one reply is held, so is every later one
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                self.commands.append(command)
                reply = self.answer(command)
                stalled = stalled or reply is self.SILENT
                if not stalled:
                    writer.write(_encode(reply))
        writer.close()

    def hang_up(self) -> None:
        for writer in self.writers:
            writer.close()

    async def stop(self) -> None:
        self.hang_up()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def echo(command: list[bytes]) -> Any:
    name = command[0].upper()
    if name in (b"SELECT", b"AUTH"):
        return b"OK"
    if name == b"FAIL":
        return Exception("ERR asked to fail")
    if name == b"HANG":
        return FakeRedis.SILENT
    return command[1] if len(command) > 1 else b"PONG"


async def client_of(port: int, **options: Any) -> Redis:
    return Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5, **options)


@asynccontextmanager
async def connected(
    answer: Callable[[list[bytes]], Any], **options: Any
) -> AsyncIterator[tuple[FakeRedis, Multiplexed]]:
    """A fake Redis answering with `answer`, and a multiplexer on it; both closed afterwards."""
    fake = FakeRedis(answer)
    shared = Multiplexed(await client_of(await fake.start(), **options))
    try:
        yield fake, shared
    finally:
        await shared.close()
        await fake.stop()


async def test_concurrent_calls_each_get_their_own_reply_on_one_connection():
    async with connected(echo) as (fake, shared):
        replies = await asyncio.gather(*(shared.execute("ECHO", f"call-{n}") for n in range(300)))
        assert replies == [f"call-{n}".encode() for n in range(300)]
        assert fake.connections == 1


async def test_an_error_reply_fails_its_own_call_only():
    async with connected(echo) as (fake, shared):
        before, failed, after = await asyncio.gather(
            shared.execute("ECHO", "a"),
            shared.execute("FAIL"),
            shared.execute("ECHO", "b"),
            return_exceptions=True,
        )
        assert (before, after) == (b"a", b"b")
        assert isinstance(failed, ResponseError) and "asked to fail" in str(failed)


async def test_several_commands_go_in_one_write_and_come_back_in_order():
    async with connected(echo) as (fake, shared):
        assert await shared.execute("ECHO", "connect") == b"connect"
        writes = []
        transport = shared._pipe.transport
        real_write = transport.write
        transport.write = lambda data: (writes.append(data), real_write(data))[1]
        replies = await shared.execute_many(("ECHO", "one"), ("ECHO", "two"), ("ECHO", "three"))
        assert replies == [b"one", b"two", b"three"] and len(writes) == 1
        with pytest.raises(ResponseError, match="asked to fail"):
            await shared.execute_many(("ECHO", "a"), ("FAIL",), ("ECHO", "b"))
        assert await shared.execute("ECHO", "still") == b"still"  # the connection went on
        with pytest.raises(RedisTimeoutError):
            await shared.execute_many(("ECHO", "x"), ("HANG",))
        assert await shared.execute("ECHO", "again") == b"again"
        assert fake.connections == 2


async def test_several_commands_on_the_in_process_fake_go_through_redis_py():
    from fakeredis import FakeAsyncRedis, FakeServer

    versions = AccountVersions(FakeAsyncRedis(server=FakeServer()))
    fresh, again, value = await versions.together(
        ("SET", "k", b"1", "NX", "EX", 60), ("SET", "k", b"2", "NX", "EX", 60), ("GET", "k")
    )
    assert fresh and not again and value == b"1"


async def test_a_silent_redis_is_a_timeout_and_the_next_call_connects_afresh():
    async with connected(echo) as (fake, shared):
        assert await shared.execute("ECHO", "first") == b"first"
        hung, behind = await asyncio.gather(
            shared.execute("HANG"), shared.execute("ECHO", "behind"), return_exceptions=True
        )
        assert isinstance(hung, RedisTimeoutError)
        # the reply behind the silent one may never come on that connection: it is failed, not awaited
        assert isinstance(behind, RedisConnectionError | RedisTimeoutError)
        assert await shared.execute("ECHO", "again") == b"again"
        assert fake.connections == 2


async def test_a_hang_up_fails_every_waiting_call_and_the_next_one_reconnects():
    async with connected(lambda command: FakeRedis.SILENT if command[0] == b"WAIT" else echo(command)) as (
        fake,
        shared,
    ):
        waiting = [asyncio.ensure_future(shared.execute("WAIT", str(n))) for n in range(5)]
        await asyncio.sleep(0.05)
        fake.hang_up()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, RedisConnectionError) for r in results), results
        assert await shared.execute("ECHO", "back") == b"back"
        assert fake.connections == 2


async def test_nothing_listening_is_a_connection_error():
    fake = FakeRedis(echo)
    port = await fake.start()
    await fake.stop()
    shared = Multiplexed(await client_of(port))
    with pytest.raises(RedisConnectionError):
        await shared.execute("ECHO", "x")


async def test_the_database_and_password_of_the_client_are_used():
    async with connected(echo, db=7, password="secret") as (fake, shared):
        assert await shared.execute("ECHO", "x") == b"x"
        assert fake.commands[:2] == [[b"AUTH", b"secret"], [b"SELECT", b"7"]]


async def test_a_replaced_pool_means_a_connection_to_its_address():
    first, second = FakeRedis(lambda c: b"first"), FakeRedis(lambda c: b"second")
    client = await client_of(await first.start())
    shared = Multiplexed(client)
    try:
        assert await shared.execute("PING") == b"first"
        client.connection_pool = (await client_of(await second.start())).connection_pool
        assert await shared.execute("PING") == b"second"
    finally:
        await shared.close()
        await first.stop()
        await second.stop()


async def test_the_in_process_fake_keeps_redis_py():
    from fakeredis import FakeAsyncRedis

    assert Multiplexed.for_client(FakeAsyncRedis()) is None
    assert Multiplexed.for_client(Redis(host="127.0.0.1", port=1)) is not None


async def test_the_session_check_sends_the_script_text_when_redis_does_not_know_it():
    """A Redis restarted since (no scripts): NOSCRIPT, then EVAL with the text, which answers."""

    def answer(command: list[bytes]) -> Any:
        if command[0] == b"EVALSHA":
            return Exception("NOSCRIPT No matching script. Please use EVAL.")
        if command[0] == b"EVAL":
            return [1, b"4", 0]
        return echo(command)

    fake = FakeRedis(answer)
    versions = AccountVersions(await client_of(await fake.start()))
    try:
        checked = await versions.check("session-x", 42)
        assert (checked.revoked, checked.version, checked.claimed) == (True, 4, False)
        assert [c[0] for c in fake.commands] == [b"EVALSHA", b"EVAL"]
        assert fake.commands[1][3:5] == [
            REVOKED_SESSION_KEY.format("session-x").encode(),
            b"account:version:42",
        ]
    finally:
        await versions.close()
        await fake.stop()


@pytest.mark.skipif(not os.environ.get("YWT_TEST_REDIS_URL"), reason="needs the suite's real Redis")
async def test_on_the_real_redis_the_check_answers_after_its_scripts_are_flushed():
    client = Redis.from_url(os.environ["YWT_TEST_REDIS_URL"], socket_timeout=2)
    versions = AccountVersions(client)
    try:
        await client.set(VERSION_KEY.format(77), 9)
        await client.set(REVOKED_SESSION_KEY.format("gone"), 1)
        await client.script_flush()
        kept, gone = await asyncio.gather(versions.check("kept", 77), versions.check("gone", 77))
        assert (kept.revoked, kept.version) == (False, 9)
        assert gone.revoked is True
    finally:
        await client.delete(VERSION_KEY.format(77), REVOKED_SESSION_KEY.format("gone"))
        await versions.close()
        await client.aclose()
