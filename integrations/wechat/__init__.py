"""WeChat official account: the interface, the in-process sandbox and our async client for WeChat's API."""

from integrations.wechat.base import InvalidWeChatCode, QrTicket, WeChatApi, WeChatError, WeChatIdentity
from integrations.wechat.http import HttpWeChat
from integrations.wechat.sandbox import SandboxWeChat

__all__ = [
    "HttpWeChat",
    "InvalidWeChatCode",
    "QrTicket",
    "SandboxWeChat",
    "WeChatApi",
    "WeChatError",
    "WeChatIdentity",
]
