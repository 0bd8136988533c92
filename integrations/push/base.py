"""App push: the interface the delivery workers send through, whichever provider is on.

The real provider is JPush (极光推送, REST API v3, integrations/push/http.py); the sandbox
(integrations/push/sandbox.py) keeps what was sent, per device, readable under /api/v1/sandbox/push.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

PLATFORMS = ("android", "ios", "hmos")


@dataclass(frozen=True, slots=True)
class PushMessage:
    """One notification to the devices of one person."""

    registration_ids: tuple[str, ...]
    platforms: tuple[str, ...]
    title: str
    body: str
    # what the app opens (our notification id, its case), as JPush `extras`
    extras: dict[str, str] = field(default_factory=dict)
    # a service notice about the person's own business goes out as a personal/system message on the phone
    # makers' channels (their caps are on operational messages, such as announcements)
    service_notice: bool = True
    time_to_live: int = 86_400


class PushRetryable(Exception):
    """The provider may take it later (a timeout, a 5xx, a rate limit): try again."""


class PushRejected(Exception):
    """The provider will never take it as it is. `gone` holds the registration ids it says no longer exist
    (an uninstalled app), to be removed from their accounts."""

    def __init__(self, detail: str, gone: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.gone = gone


class PushGateway(Protocol):
    async def new_cid(self) -> str:
        """A fresh idempotency key for one push (JPush `cid`: a second push with it sends nothing again)."""
        ...

    async def new_cids(self, count: int) -> list[str]:
        """`count` fresh keys at once (JPush gives up to 1000 a call). PushRetryable when it cannot now."""
        ...

    async def push(self, message: PushMessage, cid: str) -> str:
        """Send; the provider's message id. PushRetryable or PushRejected when it does not take it."""
        ...

    async def received(self, msg_ids: list[str]) -> dict[str, int]:
        """How many devices got each of these messages so far (JPush's report API counts per message, not
        per device; at most 100 ids a call). A message it has no count for is left out. PushRetryable
        when it cannot be asked now."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client (a sandbox holds none)."""
        ...
