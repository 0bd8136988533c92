"""The WeChat official account interface: access token, OAuth code exchange, template messages, JS-SDK ticket,
custom menu, parameterised QR codes, customer-service, mass and subscribe messages.

Shared by the HTTP client (WeChat's public API) and the in-process sandbox so the identity, notification and
wechat areas never know which one runs. The checks WeChat would refuse anyway (`check_qr_scene`,
`check_mass_send`) live here so both refuse the same input the same way, before any call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from api.kit.errors import UpstreamError

QR_SCENE_MAX = 64  # WeChat: scene_str of a permanent code, 1 to 64 characters
MASS_MIN_OPENIDS, MASS_MAX_OPENIDS = 2, 10_000  # WeChat: a mass send to an openid list names 2 to 10 000
CLIENT_MSG_ID_MAX = 64  # WeChat: a mass send's clientmsgid, at most 64 bytes
SHOW_QR_URL = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="


@dataclass(frozen=True, slots=True)
class WeChatIdentity:
    """Who a web-authorisation code belongs to: the openid under our app, the unionid if the app has one."""

    openid: str
    unionid: str | None = None


@dataclass(frozen=True, slots=True)
class QrTicket:
    """A permanent parameterised QR code: WeChat's ticket, the URL the code encodes, and where its image is."""

    ticket: str
    url: str
    image_url: str

    @classmethod
    def of(cls, ticket: str, url: str) -> QrTicket:
        return cls(ticket=ticket, url=url, image_url=SHOW_QR_URL + quote(ticket, safe=""))


class InvalidWeChatCode(Exception):
    """The OAuth code is unknown, expired or already used (WeChat errcode 40029 / 40163); the caller answers 401."""


class WeChatError(UpstreamError):
    """WeChat answered an errcode we do not handle; `errcode` lets a caller tell permanent failures
    (43004 not subscribed, 40003 bad openid, 45015 more than 48 h since the user wrote, 43101 no consent) from
    transient ones (45047 too many custom messages, 45009 quota)."""

    def __init__(self, errcode: int, detail: str | None = None) -> None:
        super().__init__(detail or f"微信接口返回错误（errcode={errcode}）")
        self.errcode = errcode


def check_qr_scene(scene: str) -> None:
    """ValueError unless `scene` is a permanent code's scene_str (1 to 64 characters)."""
    if not isinstance(scene, str) or not 1 <= len(scene) <= QR_SCENE_MAX:
        raise ValueError(f"scene must be 1 to {QR_SCENE_MAX} characters")


def check_mass_send(openids: list[str], content: str, clientmsgid: str) -> None:
    """ValueError unless WeChat would take this mass send: 2 to 10 000 openids, some text, a clientmsgid of
    1 to 64 bytes."""
    if not MASS_MIN_OPENIDS <= len(openids) <= MASS_MAX_OPENIDS:
        raise ValueError(
            f"a mass send names {MASS_MIN_OPENIDS} to {MASS_MAX_OPENIDS} openids, not {len(openids)}"
        )
    if not all(isinstance(o, str) and o for o in openids):
        raise ValueError("every openid must be a non-empty string")
    if not content:
        raise ValueError("a mass send needs some text")
    if not clientmsgid or len(clientmsgid.encode()) > CLIENT_MSG_ID_MAX:
        raise ValueError(f"clientmsgid must be 1 to {CLIENT_MSG_ID_MAX} bytes")


def check_custom_message(message: dict[str, Any]) -> None:
    """ValueError unless `message` is {"msgtype": T, T: {...}} with no recipient of its own."""
    msgtype = message.get("msgtype")
    if not isinstance(msgtype, str) or not isinstance(message.get(msgtype), dict):
        raise ValueError('a custom message is {"msgtype": T, T: {...}}')
    if "touser" in message:
        raise ValueError("the recipient is the openid argument, not part of the message")


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

    async def jsapi_ticket(self) -> str:
        """The JS-SDK ticket H5 pages sign `wx.config` with, shared like the access token."""
        ...

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """Replace the account's custom menu with `menu` ({"button": [...]}, as WeChat documents it)."""
        ...

    async def create_qr(self, scene: str) -> QrTicket:
        """A permanent QR code carrying `scene` (1 to 64 characters; ValueError otherwise, before any call)."""
        ...

    async def send_custom(self, openid: str, message: dict[str, Any]) -> None:
        """Send a customer-service message ({"msgtype": "text", "text": {"content": ...}} or "news"); WeChat
        takes it only within 48 h of the user's last message (45015 otherwise)."""
        ...

    async def mass_send_text(self, openids: list[str], content: str, clientmsgid: str) -> str:
        """Mass-send a text to 2 to 10 000 openids; WeChat's msg_id. The same clientmsgid within 24 h sends
        nothing again and answers the first send's msg_id."""
        ...

    async def send_subscribe(
        self, openid: str, template_id: str, data: dict[str, str], page: str | None = None
    ) -> None:
        """Send a subscribe message (订阅通知); 43101 when the user gave no consent."""
        ...

    async def aclose(self) -> None: ...
