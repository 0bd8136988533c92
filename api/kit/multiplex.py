"""One Redis connection shared by every request of a worker, for the one command each signed-in request makes.

redis-py sends a command by checking a connection out of its pool, asking the socket whether it can be
read, writing, waiting and checking it back in: measured ~90 µs of this process's CPU per call, a third of
a `/me`. It has no way to share one connection between concurrent callers (no "auto-pipelining"). Here
the commands of all requests of one turn of the event loop are written together in one system call on one
connection, and Redis's replies, which come back in the order the commands went, are handed to their
callers in that order (hiredis parses them, as it does for redis-py). Each caller still sends its own
command when its request arrives and waits for its own reply: nothing is answered from a copy.

Only `AccountVersions.check` uses it (api/kit/versions.py); everything else keeps redis-py. It connects to
the address of the redis-py client it is given (read again at each connection, and a new connection when
that client's pool is replaced, as the tests' `redis_down` does), over TCP or a Unix socket; a client on
TLS or the in-process fake gets `None` from `for_client` and keeps redis-py for this call too.

Failures are redis-py's exceptions, so they mean what they meant (a 503 at sign-in): a connection that
cannot be made or is lost is `ConnectionError` for every command waiting on it; a reply slower than the
client's socket timeout is `TimeoutError`, and that connection is dropped (every other command on it is
failed with `ConnectionError`, since a reply that never came may still come) and the next call connects
afresh. A Redis error reply is `ResponseError` for that command alone."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.kit import metrics


def _pack(args: tuple[bytes | str | int | float, ...]) -> bytes:
    """One command in Redis's protocol (hiredis's packer; its type stub declares a 1-tuple by mistake)."""
    return hiredis.pack_command(args)  # type: ignore[arg-type]


class _Pipe(asyncio.Protocol):
    """The connection: commands go out together at the end of the loop's turn; replies come back in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.outgoing: list[bytes] = []
        self.write_due = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.closed:
            raise RedisConnectionError("Redis connection closed")
        reply: asyncio.Future[Any] = self.loop.create_future()
        self.waiting.append(reply)
        self.outgoing.append(packed)
        if not self.write_due:
            self.write_due = True
            self.loop.call_soon(self._write_out)
        return reply

    def _write_out(self) -> None:
        self.write_due = False
        if self.outgoing and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.close(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not self.waiting:
                self.close(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            caller = self.waiting.popleft()
            if caller.done():  # its caller gave up (timeout): the connection is being dropped anyway
                continue
            if isinstance(reply, hiredis.ReplyError):
                caller.set_exception(ResponseError(str(reply)))
            else:
                caller.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def close(self, error: Exception) -> None:
        self.closed = True
        while self.waiting:
            caller = self.waiting.popleft()
            if not caller.done():
                caller.set_exception(error)
        self.outgoing.clear()
        if self.transport is not None:
            self.transport.close()


def _expire(pipe: _Pipe, waiting: list[asyncio.Future[Any]]) -> None:
    """A reply later than the socket timeout: its callers get `RedisTimeoutError`, the connection is dropped."""
    for reply in waiting:
        if not reply.done():
            reply.set_exception(RedisTimeoutError("Timeout reading from Redis"))
    pipe.close(RedisConnectionError("Redis connection dropped after a timeout"))


class Multiplexed:
    """Commands on one shared connection to the Redis of a redis-py client (see the module docstring)."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._pipe: _Pipe | None = None
        self._pool: object = None  # the client's pool the connection was made from
        self._connecting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @classmethod
    def for_client(cls, client: Redis) -> Multiplexed | None:
        """A multiplexer for `client`'s Redis, or None when its connections are not plain TCP or Unix ones."""
        kind = client.connection_pool.connection_class
        if kind is Connection or kind is UnixDomainSocketConnection:
            return cls(client)
        return None

    def _timeout(self) -> float | None:
        value = self.client.connection_pool.connection_kwargs.get("socket_timeout")
        return float(value) if value else None

    async def execute(self, *args: bytes | str | int | float) -> Any:
        """One command's reply (bytes, integers, lists of them), timed as redis-py's are (api.kit.kv)."""
        started = time.perf_counter()
        try:
            pipe = await self._ready()
            (reply,) = await self._replies(pipe, [pipe.send(_pack(args))])
        finally:
            metrics.observe_redis(str(args[0]), time.perf_counter() - started)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def execute_many(self, *commands: tuple[bytes | str | int | float, ...]) -> list[Any]:
        """Several commands written together (one round trip, as a pipeline that is not a transaction), their
        replies in order; a Redis error reply of any of them is raised once all have answered."""
        started = time.perf_counter()
        try:
            pipe = await self._ready()
            replies = await self._replies(pipe, [pipe.send(_pack(args)) for args in commands])
        finally:
            metrics.observe_redis("PIPELINE", time.perf_counter() - started)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def _replies(self, pipe: _Pipe, waiting: list[asyncio.Future[Any]]) -> list[Any]:
        """The replies, in order, a Redis error reply given as its `ResponseError`. Past the client's socket
        timeout `RedisTimeoutError`, and the connection is dropped: every other command on it fails with
        `ConnectionError`, since a reply that never came may still come. A timer on the loop and the replies
        awaited in turn, not `asyncio.timeout` and `gather`: measured here 1.6 against 4.5 µs, and 0.1
        against 7.6 µs for three replies (uvloop, 100 000 runs)."""
        timeout = self._timeout()
        timer = None if timeout is None else pipe.loop.call_later(timeout, _expire, pipe, waiting)
        answers: list[Any] = []
        try:
            for reply in waiting:
                try:
                    answers.append(await reply)
                except ResponseError as exc:
                    answers.append(exc)
        except BaseException:
            for reply in waiting:  # the ones not awaited: their errors are this one, retrieved here
                if reply.done() and not reply.cancelled():
                    reply.exception()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return answers

    def _usable(self, pool: object, loop: asyncio.AbstractEventLoop) -> _Pipe | None:
        """The connection, if open, made from the client's pool as it is now, on the running loop."""
        pipe = self._pipe
        if pipe is not None and not pipe.closed and self._pool is pool and pipe.loop is loop:
            return pipe
        return None

    async def _ready(self) -> _Pipe:
        pool = self.client.connection_pool
        loop = asyncio.get_running_loop()
        pipe = self._usable(pool, loop)
        if pipe is not None:
            return pipe
        if self._connecting is None or self._connecting[0] is not loop:
            self._connecting = (loop, asyncio.Lock())
        async with self._connecting[1]:  # one connection attempt at a time; the others use its connection
            pipe = self._usable(pool, loop)
            if pipe is not None:
                return pipe
            if self._pipe is not None and not self._pipe.closed:
                self._pipe.close(RedisConnectionError("Redis connection replaced"))
            self._pipe = pipe = await self._connect(loop, pool)
            self._pool = pool
            return pipe

    async def _connect(self, loop: asyncio.AbstractEventLoop, pool: Any) -> _Pipe:
        settings = pool.connection_kwargs
        timeout = settings.get("socket_connect_timeout") or settings.get("socket_timeout")
        pipe = _Pipe(loop)
        try:
            async with asyncio.timeout(timeout):
                if pool.connection_class is UnixDomainSocketConnection:
                    await loop.create_unix_connection(lambda: pipe, settings["path"])
                else:
                    await loop.create_connection(
                        lambda: pipe, settings.get("host", "localhost"), int(settings.get("port", 6379))
                    )
                hello: list[asyncio.Future[Any]] = []
                if settings.get("password"):
                    user = settings.get("username")
                    credentials = (user, settings["password"]) if user else (settings["password"],)
                    hello.append(pipe.send(_pack(("AUTH", *credentials))))
                if int(settings.get("db") or 0):
                    hello.append(pipe.send(_pack(("SELECT", int(settings["db"])))))
                for answer in hello:
                    await answer
        except TimeoutError:
            pipe.close(RedisConnectionError("Redis connection timed out"))
            raise RedisTimeoutError("Timeout connecting to Redis") from None
        except OSError as exc:
            pipe.close(RedisConnectionError(str(exc)))
            raise RedisConnectionError(f"Error connecting to Redis: {exc}") from None
        except ResponseError as exc:
            pipe.close(RedisConnectionError(str(exc)))
            raise RedisConnectionError(f"Redis refused the connection: {exc}") from None
        return pipe

    async def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close(RedisConnectionError("Redis connection closed"))
            self._pipe = None
