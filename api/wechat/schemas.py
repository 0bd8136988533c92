"""The official account's H5 side: web authorisation, JS-SDK config, what the account remembers of him."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CallbackQuery(BaseModel):
    """What WeChat puts in the query of every callback (safe mode adds encrypt_type=aes and msg_signature)."""

    model_config = ConfigDict(extra="allow")

    signature: str = Field(max_length=64)
    timestamp: str = Field(max_length=16)
    nonce: str = Field(max_length=64)
    echostr: str | None = Field(None, max_length=256, description="only on the URL check (GET)")
    openid: str | None = Field(None, max_length=128)
    encrypt_type: str | None = Field(None, max_length=8, description="aes in safe mode")
    msg_signature: str | None = Field(None, max_length=64, description="safe mode")


class OAuthStartQuery(_In):
    next: str = Field(
        "/h5/",
        min_length=1,
        max_length=1024,
        description="the page to return to: /h5/… or a URL on h5_domains",
    )


class OAuthCallbackQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str = Field(min_length=1, max_length=128)
    state: str = Field(min_length=1, max_length=400)


class JssdkQuery(_In):
    url: str = Field(
        min_length=8, max_length=1024, description="the page's full URL; anything after # is cut"
    )


class JssdkConfig(BaseModel):
    """What `wx.config({...})` takes (its field names)."""

    appId: str  # noqa: N815 — WeChat's names
    timestamp: int
    nonceStr: str  # noqa: N815
    signature: str


class WeChatMe(BaseModel):
    bound: bool = Field(description="his account has a WeChat bound")
    follows: bool | None = Field(description="he follows the official account (null: it has not told us)")
    point: dict[str, str] | None = Field(
        description="{code, name}: the service point whose QR code he scanned last, for his next application"
    )
    point_since: datetime | None
