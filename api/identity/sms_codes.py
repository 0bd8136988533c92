"""One-time SMS codes: 6 digits from `secrets`, stored hashed in Redis, bound to phone + purpose, five
minutes, single use, burnt after too many wrong tries; sending limited per phone and per IP.
Keys hold the phone's blind index, never the number."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable
from typing import cast

from api.identity.deps import Identity
from api.kit.errors import TooManyRequests
from api.kit.kv import raw

PURPOSES = ("login", "reset_password", "bind", "delete_account")
TEMPLATES = {
    "login": "login_code",
    "reset_password": "reset_password_code",
    "bind": "bind_code",
    "delete_account": "delete_account_code",
}

# One wrong try, atomically: concurrent wrong guesses each count, and the one that reaches the limit burns
# the code. A key already gone (used, burnt or expired) is not brought back.
_WRONG_TRY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local wrong = redis.call('HINCRBY', KEYS[1], 'wrong', 1)
if wrong >= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
return wrong
"""


def code_key(purpose: str, phone_index: str) -> str:
    return f"sms:code:{purpose}:{phone_index}"


def cooldown_key(phone_index: str) -> str:
    return f"sms:cooldown:{phone_index}"


def _hash(ident: Identity, phone_index: str, purpose: str, code: str) -> str:
    # keyed by the blind-index key, so a leaked Redis dump cannot be brute-forced offline by itself
    return ident.index.digest(f"{purpose}:{phone_index}:{code}", "sms_code")


async def send_code(ident: Identity, phone: str, purpose: str, ip: str, *, deliver: bool) -> tuple[int, int]:
    """Make and send a code; the answer is the same whether or not the phone has an account.

    `deliver` is False when sending would reveal nothing useful (a password reset for an unknown phone):
    the limits and the answer stay identical, only the SMS is not sent."""
    security = ident.settings.security
    phone_index = ident.phone_index(phone)
    await ident.limiter.hit("sms-ip", ip or "unknown", security.sms_max_per_ip_per_hour, 3600)
    # taking the cooldown is the check: of concurrent sends to one phone exactly one gets through
    cooldown = cooldown_key(phone_index)
    if not await ident.redis.set(cooldown, b"1", ex=security.sms_resend_after, nx=True):
        left = await ident.redis.ttl(cooldown)
        raise TooManyRequests(
            retry_after=left if left > 0 else security.sms_resend_after, detail="验证码已发送，请稍后再试"
        )
    await ident.limiter.hit("sms-phone", phone_index, security.sms_max_per_phone_per_day, 86400)
    code = f"{secrets.randbelow(1_000_000):06d}"
    key = code_key(purpose, phone_index)
    async with ident.redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping={"hash": _hash(ident, phone_index, purpose, code), "wrong": 0})
        pipe.expire(key, security.sms_code_ttl)
        await pipe.execute()
    if deliver:
        await ident.integrations.sms.send(phone, TEMPLATES[purpose], {"code": code})
    return security.sms_code_ttl, security.sms_resend_after


async def check_code(ident: Identity, phone: str, purpose: str, code: str) -> bool:
    """True once for the right code; a wrong code counts, and too many wrong ones burn the code."""
    phone_index = ident.phone_index(phone)
    key = code_key(purpose, phone_index)
    stored = await cast(
        Awaitable[bytes | None], ident.redis.hget(key, "hash")
    )  # redis-py 6 types it sync or async
    if stored is None:
        return False
    expected = _hash(ident, phone_index, purpose, code).encode()
    if hmac.compare_digest(raw(stored), expected):
        # single use: only the caller whose DELETE removed the key wins
        return await ident.redis.delete(key) == 1
    wrong_try = ident.redis.register_script(_WRONG_TRY)
    await wrong_try(keys=[key], args=[ident.settings.security.sms_max_wrong_tries])
    return False


async def forget_phone(ident: Identity, phone_index: str) -> None:
    """Remove every Redis key that names this phone (account deletion): codes, cooldown, rate-limit counters."""
    await ident.redis.delete(*[code_key(p, phone_index) for p in PURPOSES], cooldown_key(phone_index))
    await ident.limiter.forget(phone_index)
