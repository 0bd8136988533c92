"""One-time SMS codes: 6 digits from `secrets`, stored hashed in Redis, bound to phone + purpose, five
minutes, single use, burnt after too many wrong tries; sending limited per phone and per IP.
Keys hold the phone's blind index, never the number."""

from __future__ import annotations

import hmac
import secrets

import orjson

from api.identity.deps import Identity

PURPOSES = ("login", "reset_password", "bind")
TEMPLATES = {"login": "login_code", "reset_password": "reset_password_code", "bind": "bind_code"}


def _code_key(purpose: str, phone_index: str) -> str:
    return f"sms:code:{purpose}:{phone_index}"


def _cooldown_key(phone_index: str) -> str:
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
    cooldown = await ident.redis.ttl(_cooldown_key(phone_index))
    if cooldown and cooldown > 0:
        from api.errors import TooManyRequests

        raise TooManyRequests(retry_after=cooldown, detail="验证码已发送，请稍后再试")
    await ident.limiter.hit("sms-phone", phone_index, security.sms_max_per_phone_per_day, 86400)
    code = f"{secrets.randbelow(1_000_000):06d}"
    record = {"hash": _hash(ident, phone_index, purpose, code), "wrong": 0}
    await ident.redis.set(_code_key(purpose, phone_index), orjson.dumps(record), ex=security.sms_code_ttl)
    await ident.redis.set(_cooldown_key(phone_index), b"1", ex=security.sms_resend_after)
    if deliver:
        await ident.integrations.sms.send(phone, TEMPLATES[purpose], {"code": code})
    return security.sms_code_ttl, security.sms_resend_after


async def check_code(ident: Identity, phone: str, purpose: str, code: str) -> bool:
    """True once for the right code; a wrong code counts, and too many wrong ones burn the code."""
    phone_index = ident.phone_index(phone)
    key = _code_key(purpose, phone_index)
    raw = await ident.redis.get(key)
    if raw is None:
        return False
    record = orjson.loads(raw)
    if hmac.compare_digest(record["hash"], _hash(ident, phone_index, purpose, code)):
        # single use: only the caller whose DELETE removed the key wins
        return await ident.redis.delete(key) == 1
    record["wrong"] += 1
    if record["wrong"] >= ident.settings.security.sms_max_wrong_tries:
        await ident.redis.delete(key)
    else:
        await ident.redis.set(key, orjson.dumps(record), keepttl=True)
    return False


async def forget_phone(ident: Identity, phone_index: str) -> None:
    """Remove every Redis key that names this phone (account deletion)."""
    keys = [_code_key(p, phone_index) for p in PURPOSES] + [_cooldown_key(phone_index)]
    async for key in ident.redis.scan_iter(match=f"rl:*:{phone_index}:*"):
        keys.append(key)
    await ident.redis.delete(*keys)
