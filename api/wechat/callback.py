"""The official account's callback as WeChat speaks it: signatures, timestamps, plain and safe mode, parsing.

WeChat signs every callback with `signature = sha1(sort(token, timestamp, nonce))` in the query; in safe mode
(`encrypt_type=aes`) the body is `<xml><ToUserName/><Encrypt/></xml>` and `msg_signature = sha1(sort(token,
timestamp, nonce, Encrypt))`, the message AES-256-CBC under the EncodingAESKey (wechatpy's `PrpCrypto`), the
reply encrypted the same way. wechatpy computes the signatures (`WeChatSigner`), does the crypto, parses and
renders; it compares signatures with `!=`, so the comparisons here are ours, with `hmac.compare_digest`. A body
with a DOCTYPE is refused before any parser sees it; xmltodict (under wechatpy) refuses entities besides.
"""

from __future__ import annotations

import hmac
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.parsers.expat import ExpatError

import xmltodict
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.utils import WeChatSigner

from api.kit.config import WechatSection
from api.wechat.errors import MessageInvalid, ModeRefused, SignatureInvalid, TimestampStale

_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_NUMBER = re.compile(r"^[0-9]{1,12}$")


def signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True, slots=True)
class Query:
    signature: str
    timestamp: str
    nonce: str
    encrypt_type: str
    msg_signature: str

    @classmethod
    def of(cls, args: Any) -> Query:
        def one(name: str) -> str:
            value = args.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            signature=one("signature"),
            timestamp=one("timestamp"),
            nonce=one("nonce"),
            encrypt_type=one("encrypt_type"),
            msg_signature=one("msg_signature"),
        )


def check_query(settings: WechatSection, query: Query, now: float) -> None:
    """The plain signature over token, timestamp and nonce, and a timestamp within `seen_ttl` of now."""
    if not settings.token:
        raise SignatureInvalid("公众号回调未配置 token")
    if not _NUMBER.match(query.timestamp) or not query.nonce or len(query.nonce) > 64:
        raise SignatureInvalid("签名参数不完整")
    if not _same(signature(settings.token, query.timestamp, query.nonce), query.signature):
        raise SignatureInvalid("签名无效")
    if abs(now - int(query.timestamp)) > settings.seen_ttl:
        raise TimestampStale("时间戳超出允许范围")


def refuse_doctype(body: bytes) -> None:
    if _DOCTYPE.search(body):
        raise MessageInvalid("消息不得含有 DOCTYPE 或实体声明")


def parse(xml: bytes | str) -> dict[str, Any]:
    """The message's fields (xmltodict, entities disabled); 400 for anything that is not one."""
    raw = xml.encode() if isinstance(xml, str) else xml
    refuse_doctype(raw)
    try:
        data = xmltodict.parse(raw, disable_entities=True)
    except (ValueError, ExpatError) as exc:
        raise MessageInvalid("消息不是有效的 XML") from exc
    message = data.get("xml") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        raise MessageInvalid("消息缺少 <xml> 根元素")
    return message


def _encrypted_part(body: bytes) -> str | None:
    """The `Encrypt` of a safe-mode envelope. ElementTree (expat in C, through defusedxml: no DTD, no
    entities) reads the two-element envelope several times faster than xmltodict's Python callbacks; a
    DOCTYPE is refused first with the same answer as everywhere. The message inside is parsed as any other."""
    refuse_doctype(body)
    try:
        root = safe_fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise MessageInvalid("消息不是有效的 XML") from exc
    if root.tag != "xml":
        raise MessageInvalid("消息缺少 <xml> 根元素")
    return root.findtext("Encrypt")


def open_body(settings: WechatSection, query: Query, body: bytes) -> tuple[dict[str, Any], bool]:
    """The message and whether it came in safe mode (its reply must go back encrypted)."""
    safe = query.encrypt_type == "aes"
    if query.encrypt_type not in ("", "raw", "aes"):
        raise MessageInvalid("未知的 encrypt_type")
    if safe and settings.callback_mode == "plain":
        raise ModeRefused("公众号为明文模式，不接受加密消息")
    if not safe and settings.callback_mode == "safe":
        raise ModeRefused("公众号为安全模式，不接受明文消息")
    if not safe:
        return parse(body), False
    encrypted = _encrypted_part(body)
    if not isinstance(encrypted, str) or not encrypted:
        raise MessageInvalid("安全模式消息缺少 Encrypt")
    expected = signature(settings.token, query.timestamp, query.nonce, encrypted)
    if not _same(expected, query.msg_signature):
        raise SignatureInvalid("消息签名无效")
    try:
        inner = PrpCrypto(_key(settings)).decrypt(encrypted, settings.app_id)
    except InvalidAppIdException as exc:
        raise SignatureInvalid("消息不属于本公众号") from exc
    except (ValueError, TypeError, IndexError, struct.error) as exc:
        raise MessageInvalid("消息无法解密") from exc
    return parse(inner), True


@lru_cache(maxsize=4)
def _crypto(token: str, aes_key: str, app_id: str) -> WeChatCrypto:
    """One wechatpy crypto per key (its AES key decoded once, not per message)."""
    return WeChatCrypto(token, aes_key, app_id)


def _key(settings: WechatSection) -> bytes:
    return bytes(_crypto(settings.token, settings.encoding_aes_key, settings.app_id).key)


def seal(settings: WechatSection, reply_xml: str, nonce: str, timestamp: str) -> str:
    """A reply for safe mode: encrypted and signed as WeChat expects."""
    crypto = _crypto(settings.token, settings.encoding_aes_key, settings.app_id)
    return str(crypto.encrypt_message(reply_xml, nonce, timestamp))
