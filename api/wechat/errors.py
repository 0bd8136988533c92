"""The errors of the official account's callback and of the H5 pages' web authorisation and JS-SDK config."""

from __future__ import annotations

from api.kit.errors import AppError, Forbidden, InvalidInput


class SignatureInvalid(Forbidden):
    code = "wechat_signature_invalid"
    title = "签名无效：不是来自微信服务器的请求"


class TimestampStale(Forbidden):
    code = "wechat_timestamp_stale"
    title = "时间戳超出允许范围"


class ModeRefused(Forbidden):
    code = "wechat_mode_refused"
    title = "消息加解密方式与公众号配置不符"


class MessageInvalid(AppError):
    status = 400
    code = "wechat_message_invalid"
    title = "不是有效的微信消息"


class MessageTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    title = "消息过大"


class OAuthStateInvalid(Forbidden):
    code = "wechat_state_invalid"
    title = "授权状态无效或已过期，请重新打开页面"


class PageNotAllowed(InvalidInput):
    """A `next` or JS-SDK `url` outside the configured H5 domains (an open redirect, a page not ours)."""

    code = "wechat_page_not_allowed"
    title = "页面地址不在允许的域名内"

    def __init__(self, field: str, detail: str | None = None) -> None:
        message = detail or self.title
        super().__init__(message, errors=[{"field": field, "message": message}])
