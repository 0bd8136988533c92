"""Account versions in Redis: what lets a worker trust its cached copy of an account without the database.

`accounts.version` is bumped in the transaction of every write to what `require()` and `/me` read (roles,
status, real-name level, scope, bindings, password); after the commit the new version is copied here with
"only upwards" semantics, so two writers committing in either order leave the higher one. A worker uses its
cached copy of an account only while the copy's version equals the one here, and checks that in the same
Redis round trip as the session's revocation (one Lua call, `check`).

If a process dies between its commit and the copy, Redis keeps the old version for a moment: the cached copies
of every worker expire after `max_age` seconds, the next read of the account from the database sees the newer
version and copies it here (`publish` from a reader is safe: what it read is committed)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from api.kit.kv import raw
from api.kit.multiplex import Multiplexed

VERSION_KEY = "account:version:{}"
REVOKED_SESSION_KEY = "session:revoked:{}"
# a named counter bumped after commits that make "not found" cached copies stale (`bump_generation`): a copy
# read under one generation is used only while Redis holds that same generation (a missing counter: never)
GENERATION_KEY = "generation:{}"

# KEYS[1] the version key; ARGV[1] the version: set it only upwards
_PUBLISH = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local given = tonumber(ARGV[1])
if given > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return given
end
return current
"""

# KEYS[1] the session's revocation key, KEYS[2] the account's version key, KEYS[3] (optional) a slot to claim;
# ARGV[1] the claim's value, ARGV[2] its lifetime in seconds. A revoked session claims nothing.
# Answers {revoked 0/1, version or false, claimed 0/1}.
_CHECK = """
local revoked = redis.call('EXISTS', KEYS[1])
local version = redis.call('GET', KEYS[2])
local claimed = 0
if revoked == 0 and KEYS[3] then
  if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'EX', ARGV[2]) then
    claimed = 1
  end
end
return {revoked, version, claimed}
"""


@dataclass(frozen=True, slots=True)
class Checked:
    revoked: bool
    version: int | None  # None: Redis holds no version of the account (never written, or Redis restarted)
    claimed: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """A key to `SET NX EX` in the same round trip as the session check (an Idempotency-Key's slot)."""

    key: str
    value: bytes
    ttl: int


class AccountVersions:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._publish = redis.register_script(_PUBLISH)
        self._check = redis.register_script(_CHECK)
        # every signed-in request's one call, on the worker's shared connection (api/kit/multiplex.py);
        # None for the in-process fake or TLS, which keep redis-py's script call
        self._shared = Multiplexed.for_client(redis)

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()

    async def _check_call(self, keys: list[str], args: list[bytes | int]) -> list[Any]:
        shared = self._shared
        if shared is None:
            reply: list[Any] = await self._check(keys=keys, args=args)
            return reply
        try:
            reply = await shared.execute("EVALSHA", self._check.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            # a Redis restarted or flushed since: the script's text, which Redis then keeps
            reply = await shared.execute("EVAL", _CHECK, len(keys), *keys, *args)
        return reply

    async def together(self, *commands: tuple[bytes | str | int | float, ...]) -> list[Any]:
        """Several commands in one round trip, replies in order (not a transaction): on the worker's shared
        connection, or a redis-py pipeline for the in-process fake and TLS. For a hot path that needs a few
        keys at once (the official account's callback: its message's de-duplication and its cache checks)."""
        shared = self._shared
        if shared is not None:
            return await shared.execute_many(*commands)
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute()
        return replies

    async def bump_generation(self, name: str) -> None:
        """A new generation of `name` (a named counter, `GENERATION_KEY`), after a commit that makes every
        cached copy read under an older one stale (e.g. a new binding: the caches of "bound to nobody")."""
        await self.redis.incr(GENERATION_KEY.format(name))

    async def publish(self, account_id: int, version: int) -> None:
        await self._publish(keys=[VERSION_KEY.format(account_id)], args=[version])

    async def check(self, session: str, account_id: int, claim: Claim | None = None) -> Checked:
        """In one round trip: whether the session is revoked, the account's version, and the claim."""
        keys = [REVOKED_SESSION_KEY.format(session), VERSION_KEY.format(account_id)]
        args: list[bytes | int] = []
        if claim is not None:
            keys.append(claim.key)
            args = [claim.value, claim.ttl]
        revoked, version, claimed = await self._check_call(keys, args)
        return Checked(
            revoked=bool(revoked),
            version=int(raw(version)) if version else None,
            claimed=bool(claimed),
        )


# where the writes of this task publish their versions (set per request by the app, and by the CLI)
publisher: ContextVar[AccountVersions | None] = ContextVar("ywt_account_versions", default=None)
