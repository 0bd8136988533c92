"""The SMS sandbox: messages are rendered and kept in Redis instead of being sent.

Embedded mode and tests need to sign in with an SMS code without a gateway; the sandbox endpoint
(GET /api/v1/sandbox/sms?phone=) reads what was "sent" through `sent_to`. Redis rather than process memory so
every worker (and the test client) sees the same messages.

Redis: list `sandbox:sms:{phone}`, JSON `{"phone", "text", "code", "sent_at"}` per message, newest last, the
last 50 kept, expiring 24 h after the latest message.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from typing import cast

import orjson
from redis.asyncio import Redis

from api.kit import clock
from integrations.sms.base import render

KEEP = 50
TTL_SECONDS = 24 * 3600


def sandbox_key(phone: str) -> str:
    return f"sandbox:sms:{phone}"


class SandboxSms:
    """An SmsGateway that records instead of sending."""

    def __init__(self, redis: Redis, sign_name: str) -> None:
        self._redis = redis
        self._sign = sign_name

    async def send(self, phone: str, template: str, params: dict[str, str]) -> str:
        text = render(template, self._sign, params)
        record = {
            "phone": phone,
            "text": text,
            "code": params.get("code"),
            "sent_at": clock.now().isoformat(timespec="seconds"),
        }
        key = sandbox_key(phone)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, orjson.dumps(record))
            pipe.ltrim(key, -KEEP, -1)
            pipe.expire(key, TTL_SECONDS)
            await pipe.execute()
        return "sandbox-" + secrets.token_hex(12)

    async def sent_to(self, phone: str) -> list[dict]:
        """Messages recorded for a phone, oldest first."""
        return [
            orjson.loads(item)
            for item in await cast(Awaitable[list[bytes]], self._redis.lrange(sandbox_key(phone), 0, -1))
        ]

    async def aclose(self) -> None:
        return None
