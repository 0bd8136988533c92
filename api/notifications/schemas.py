"""Shapes of the inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.kit.http import PageQuery


class InboxQuery(PageQuery):
    unread: bool | None = None


class NotificationOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    application_id: int | None
    created_at: datetime
    read_at: datetime | None


class NotificationList(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


# ---- delivery status ------------------------------------------------------------------------------------

DeliveryStatus = Literal[
    "created", "sending", "sent", "delivered", "temporary-failure", "permanent-failure", "technical-failure"
]


class StatusChange(BaseModel):
    status: DeliveryStatus
    at: datetime
    detail: str | None = None


class ChannelStatus(BaseModel):
    channel: Literal["inbox", "push", "wechat"]
    status: DeliveryStatus
    updated_at: datetime
    attempts: int
    history: list[StatusChange]


class NotificationDetail(NotificationOut):
    channels: list[ChannelStatus]


# ---- devices and preferences ------------------------------------------------------------------------------


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registration_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    platform: Literal["android", "ios", "hmos"]
    app_version: str = Field(min_length=1, max_length=32)


class DeviceOut(BaseModel):
    registration_id: str
    platform: str
    app_version: str
    updated_at: datetime


class DeviceList(BaseModel):
    items: list[DeviceOut]


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["22:00"])
    end: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["08:00"])


class CategoryPreference(BaseModel):
    category: str
    label: str
    mandatory: bool
    urgent: bool
    channels: dict[str, bool]


class PreferencesOut(BaseModel):
    categories: list[CategoryPreference]
    quiet_hours: QuietHours | None


class ChannelChoices(BaseModel):
    """A category's channels the person turns on (true) or off (false); one not given keeps what it was."""

    model_config = ConfigDict(extra="forbid", strict=True)

    inbox: bool | None = None
    push: bool | None = None
    wechat: bool | None = None


class MandatoryChannelChoices(ChannelChoices):
    """The channels of a mandatory category: its inbox cannot be turned off."""

    inbox: Literal[True] | None = Field(None, description="该类消息必须保留在站内信中")


class CategoryChoices(BaseModel):
    """One entry per category of api/notifications/categories.py (a test holds the two together)."""

    model_config = ConfigDict(extra="forbid")

    application_status: ChannelChoices | None = None
    application_returned: MandatoryChannelChoices | None = None
    complaint_reply: ChannelChoices | None = None
    deadline_warning: MandatoryChannelChoices | None = None
    deadline_overdue: MandatoryChannelChoices | None = None

    def given(self) -> dict[str, dict[str, bool]]:
        """{category: {channel: on}} of what was given."""
        out: dict[str, dict[str, bool]] = {}
        for kind in self.model_fields_set:
            choices = getattr(self, kind)
            if choices is not None:
                out[kind] = {c: v for c, v in choices.model_dump().items() if v is not None}
        return out


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # a category or channel not given keeps what it was
    categories: CategoryChoices = Field(default_factory=CategoryChoices)
    # null: no quiet hours; absent: unchanged
    quiet_hours: QuietHours | None = None
