"""A WeChat peer: builds callback requests exactly as WeChat's servers do, and reads our replies as they would.

Plain mode: `?signature=sha1(sort(token, timestamp, nonce))&timestamp&nonce&openid`, the message XML as the
body. Safe mode adds `encrypt_type=aes&msg_signature=sha1(sort(token, timestamp, nonce, Encrypt))`, the body
`<xml><ToUserName/><Encrypt/></xml>` with Encrypt from wechatpy's own `PrpCrypto` (AES-256-CBC under the
EncodingAESKey, random 16 bytes + length + message + appid); an encrypted reply is opened and its signature
checked with wechatpy's `WeChatCrypto.decrypt_message`, as WeChat would."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import httpx
import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner

from api.kit.config import WechatSection

URL = "/api/v1/wechat/callback"
ACCOUNT = "gh_0123456789ab"  # the official account's own id (ToUserName)
_msgids = itertools.count(24_000_000_000_000_000)


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


def text(openid: str, content: str, *, msgid: int | None = None, at: int | None = None) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msgid or next(_msgids)}</MsgId></xml>"
    )


def event(openid: str, name: str, *, at: int | None = None, **fields: Any) -> str:
    extra = "".join(
        f"<{k}>{v}</{k}>"
        if isinstance(v, int | float) or str(v).startswith("<")
        else f"<{k}><![CDATA[{v}]]></{k}>"
        for k, v in fields.items()
    )
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{name}]]></Event>{extra}</xml>"
    )


class Peer:
    """WeChat's side of the callback for one official account's settings."""

    def __init__(self, settings: WechatSection) -> None:
        self.settings = settings
        self.token = settings.token
        self.crypto = WeChatCrypto(settings.token, settings.encoding_aes_key, settings.app_id)

    def query(
        self, *, timestamp: int | None = None, nonce: str | None = None, openid: str = ""
    ) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        return {"signature": sign(self.token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": openid}

    def seal(self, xml: str, query: dict[str, str]) -> str:
        """Safe mode: the body and the query's encrypt_type and msg_signature, as WeChat makes them."""
        encrypted = PrpCrypto(self.crypto.key).encrypt(xml, self.settings.app_id).decode()
        query["encrypt_type"] = "aes"
        query["msg_signature"] = sign(self.token, query["timestamp"], query["nonce"], encrypted)
        return f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"

    async def post(
        self, client: httpx.AsyncClient, xml: str, *, safe: bool = False, **query_kw: Any
    ) -> httpx.Response:
        query = self.query(**query_kw)
        body = self.seal(xml, query) if safe else xml
        return await client.post(
            URL, params=query, content=body.encode(), headers={"Content-Type": "text/xml"}
        )

    def reply(self, response: httpx.Response, *, safe: bool = False) -> dict[str, Any] | None:
        """Our reply as WeChat reads it (None for "success"); in safe mode decrypted, its signature checked."""
        assert response.status_code == 200, response.text
        body = response.text
        if body in ("success", ""):
            return None
        if safe:
            envelope = xmltodict.parse(body)["xml"]
            body = self.crypto.decrypt_message(
                body, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
            )
        return dict(xmltodict.parse(body)["xml"])
