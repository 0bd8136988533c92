"""Shapes of API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# what a key may be for; each route that takes a key names the scope it needs
Scope = Literal["licences:verify"]
SCOPES: dict[str, str] = {"licences:verify": "核验电子证照亮证码"}


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(
        min_length=2, max_length=64, description="the system and who runs it, e.g. 某银行新余分行柜面系统"
    )
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))
    rate_limit: int = Field(600, ge=1, le=100_000, strict=True, description="requests per minute")


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    scopes: list[str]
    rate_limit: int
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown this once; only its SHA-256 is kept")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


class ApiKeyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_revoked: bool = False
