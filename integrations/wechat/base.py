"""The WeChat official account interface: access token, OAuth code exchange, template messages.

Shared by the HTTP client (WeChat's public API) and the in-process sandbox so the identity and notification
areas never know which one runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from api.kit.errors import UpstreamError


@dataclass(frozen=True, slots=True)
class WeChatIdentity:
    """Who a web-authorisation code belongs to: the openid under our app, the unionid if the app has one."""

    openid: str
    unionid: str | None = None


class InvalidWeChatCode(Exception):
    """The OAuth code is unknown, expired or already used (WeChat errcode 40029 / 40163); the caller answers 401."""


class WeChatError(UpstreamError):
    """WeChat answered an errcode we do not handle; `errcode` lets a caller tell permanent failures
    (43004 not subscribed, 40003 bad openid) from transient ones."""

    def __init__(self, errcode: int, detail: str | None = None) -> None:
        super().__init__(detail or f"微信接口返回错误（errcode={errcode}）")
        self.errcode = errcode


class WeChatApi(Protocol):
    async def access_token(self) -> str: ...

    async def oauth_identity(self, code: str) -> WeChatIdentity: ...

    async def send_template(
        self,
        openid: str,
        template_id: str,
        data: dict[str, str],
        url: str | None = None,
        client_msg_id: str | None = None,
    ) -> str:
        """Send a template message; WeChat's msgid. WeChat sends one `client_msg_id` once within 10
        minutes (a second call answers the first's msgid without sending)."""
        ...

    async def aclose(self) -> None: ...
