"""Shapes of the sandbox endpoints (embedded mode only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.kit.http import QueryModel


class SandboxSmsOut(BaseModel):
    phone: str
    text: str
    code: str | None
    sent_at: str


class SandboxSmsList(BaseModel):
    items: list[SandboxSmsOut]


class SandboxSmsQuery(QueryModel):
    phone: str = Field(
        min_length=11, max_length=11, pattern=r"^1[3-9][0-9]{9}$", description="中国大陆手机号"
    )


class SandboxWeChatCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    openid: str | None = Field(None, min_length=6, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    unionid: str | None = Field(None, min_length=6, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class SandboxWeChatCodeOut(BaseModel):
    code: str
    openid: str


class SandboxPushOut(BaseModel):
    registration_id: str
    title: str
    body: str
    extras: dict[str, str]
    msg_id: str
    cid: str
    sent_at: str


class SandboxPushList(BaseModel):
    items: list[SandboxPushOut]


class SandboxPushQuery(QueryModel):
    registration_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class SandboxWeChatMessageOut(BaseModel):
    openid: str
    template_id: str
    data: dict[str, str]
    url: str | None
    msgid: str
    client_msg_id: str | None = None
    sent_at: str


class SandboxWeChatMessageList(BaseModel):
    items: list[SandboxWeChatMessageOut]


class SandboxWeChatMessageQuery(QueryModel):
    openid: str = Field(min_length=6, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class SandboxLicenceStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["valid", "revoked", "suspended"]
    # true: our cached read goes too, so the change shows at once; false: as the real library would, within
    # licences.status_ttl seconds
    at_once: bool = Field(False, strict=True)


class SandboxLicenceStatusOut(BaseModel):
    licence_id: int
    status: str
