"""The official account's callback as WeChat speaks it: signatures, timestamps, plain and safe mode, parsing.

WeChat signs every callback with `signature = sha1(sort(token, timestamp, nonce))` in the query; in safe mode
(`encrypt_type=aes`) the body is `<xml><ToUserName/><Encrypt/></xml>` and `msg_signature = sha1(sort(token,
timestamp, nonce, Encrypt))`, the message AES-256-CBC under the EncodingAESKey (wechatpy's `PrpCrypto`), the
reply encrypted the same way. wechatpy computes the signatures (`WeChatSigner`), does the crypto, parses and
renders; it compares signatures with `!=`, so the comparisons here are ours, with `hmac.compare_digest`. A body
with a DOCTYPE is refused before any parser sees it, and the parser (expat, `parse`) refuses DTDs and entity
declarations besides.
"""

from __future__ import annotations

import hmac
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from xml.parsers import expat
from xml.parsers.expat import ExpatError

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
    """The message's fields, as xmltodict gives them (a nested element a dict, a repeated one a list, text
    stripped, an empty element None; attributes, which WeChat never sends, left out); 400 for anything that
    is not one. Read by expat itself (`_read`): xmltodict's Python callbacks cost three times as much, and a
    DTD is refused by the parser as well as before it."""
    raw = xml.encode() if isinstance(xml, str) else xml
    refuse_doctype(raw)
    try:
        name, message = _read(raw)
    except (ValueError, ExpatError) as exc:
        raise MessageInvalid("消息不是有效的 XML") from exc
    if name != "xml" or not isinstance(message, dict):
        raise MessageInvalid("消息缺少 <xml> 根元素")
    return message


def _refuse(*_: object) -> None:
    raise ValueError("DTD and entity declarations are refused")


def _read(raw: bytes) -> tuple[str, dict[str, Any] | str | None]:
    """(root element's name, its content) of a document, with expat (C); a DOCTYPE or an entity
    declaration is refused where the parser meets it, so no entity is ever defined, let alone expanded."""
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.buffer_text = True
    # each open element: [name, its children (None until one ends), its text parts]
    stack: list[list[Any]] = []
    top: list[Any] = ["", None, []]

    def start(name: str, _attributes: dict[str, str]) -> None:
        stack.append([name, None, []])

    def end(name: str) -> None:
        _, children, text = stack.pop()
        value = children if children is not None else ("".join(text).strip() or None)
        parent = stack[-1] if stack else top
        if parent[1] is None:
            parent[1] = {}
        held = parent[1].get(name, _ABSENT)
        if held is _ABSENT:
            parent[1][name] = value
        elif isinstance(held, list):
            held.append(value)
        else:
            parent[1][name] = [held, value]

    def text(data: str) -> None:
        if stack:
            stack[-1][2].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.Parse(raw, True)
    if not top[1]:
        raise ValueError("no root element")
    ((name, value),) = top[1].items()
    return name, value


_ABSENT = object()


# a safe-mode envelope exactly as WeChat's servers write it: an account id and base64, nothing that could be
# markup (no `<!`, no `&`): read without a parser; anything else goes to the parser
_ENVELOPE = re.compile(
    rb"\s*<xml>\s*<ToUserName><!\[CDATA\[[A-Za-z0-9_-]{1,64}\]\]></ToUserName>\s*"
    rb"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]{1,1000000})\]\]></Encrypt>\s*</xml>\s*"
)


def _encrypted_part(body: bytes) -> str | None:
    """The `Encrypt` of a safe-mode envelope: WeChat's own form matched as it is (a third of a parse), any
    other read as any message is."""
    plain = _ENVELOPE.fullmatch(body)
    if plain is not None:
        return plain.group(1).decode("ascii")
    envelope = parse(body)
    encrypted = envelope.get("Encrypt")
    return encrypted if isinstance(encrypted, str) else None


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
        inner = _prp_of(settings).decrypt(encrypted, settings.app_id)
    except InvalidAppIdException as exc:
        raise SignatureInvalid("消息不属于本公众号") from exc
    except (ValueError, TypeError, IndexError, struct.error) as exc:
        raise MessageInvalid("消息无法解密") from exc
    return parse(inner), True


@lru_cache(maxsize=4)
def _crypto(token: str, aes_key: str, app_id: str) -> WeChatCrypto:
    """One wechatpy crypto per key (its AES key decoded once, not per message)."""
    return WeChatCrypto(token, aes_key, app_id)


@lru_cache(maxsize=4)
def _prp(token: str, aes_key: str, app_id: str) -> PrpCrypto:
    """wechatpy's AES-256-CBC of one key, built once: it holds only the key and its cipher (the IV is the
    key's first 16 bytes), each message getting its own encryptor or decryptor. wechatpy builds one per
    message, a tenth of what a reply's sealing cost."""
    return PrpCrypto(_crypto(token, aes_key, app_id).key)


def _prp_of(settings: WechatSection) -> PrpCrypto:
    return _prp(settings.token, settings.encoding_aes_key, settings.app_id)


_SEALED = """<xml>
<Encrypt><![CDATA[{encrypt}]]></Encrypt>
<MsgSignature><![CDATA[{signature}]]></MsgSignature>
<TimeStamp>{timestamp}</TimeStamp>
<Nonce><![CDATA[{nonce}]]></Nonce>
</xml>"""


def seal(settings: WechatSection, reply_xml: str, nonce: str, timestamp: str) -> str:
    """A reply for safe mode: encrypted and signed as WeChat expects (wechatpy's `encrypt_message`, step by
    step, with the crypto built once)."""
    encrypted = _prp_of(settings).encrypt(reply_xml, settings.app_id).decode()
    return _SEALED.format(
        encrypt=encrypted,
        signature=signature(settings.token, timestamp, nonce, encrypted),
        timestamp=timestamp,
        nonce=nonce,
    )
