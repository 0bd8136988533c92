"""Shapes of the inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.kit.clock import Instant
from api.kit.http import PageQuery, QueryModel


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
    case_arrived: ChannelChoices | None = None
    complaint_routed: ChannelChoices | None = None
    announcement: ChannelChoices | None = None
    licence_expiry: ChannelChoices | None = None

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


# ---- announcements ----------------------------------------------------------------------------------------

AudienceKind = Literal["everyone", "district", "community", "role", "item"]


class AudienceIn(BaseModel):
    """Who an announcement reaches: everyone with an account; or a district's / a community's people (the
    residents with a case at one of its points and the grid workers serving one: residents have no address
    of record); or everyone with a role; or the residents with a case of an item (its code)."""

    model_config = ConfigDict(extra="forbid")

    kind: AudienceKind
    code: str | None = Field(
        None, min_length=1, max_length=64, description="district/community/item code, or the role"
    )


class AudienceOut(BaseModel):
    kind: AudienceKind
    code: str | None = None


class AnnouncementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=64)
    body: str = Field(min_length=1, max_length=5000)
    audience: AudienceIn
    # the inbox always; app push and WeChat as each person chose for announcements. WeChat goes as mass
    # sends (群发) to the bound accounts that follow the official account; WeChat lets a follower receive 4
    # mass messages a month, so it is not the default
    channels: Annotated[list[Literal["inbox", "push", "wechat"]], Field(min_length=1, max_length=3)] = [
        "inbox",
        "push",
    ]
    # absent: now; never in the past
    send_at: Instant | None = None


class AnnouncementOut(BaseModel):
    id: int
    title: str
    body: str
    audience: AudienceOut
    channels: list[str]
    send_at: datetime
    status: Literal["scheduled", "sending", "sent", "cancelled"]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancelled_at: datetime | None
    # inbox copies written so far, and deliveries per channel and status
    recipients: int
    deliveries: dict[str, dict[str, int]]


class AnnouncementList(BaseModel):
    items: list[AnnouncementOut]
    next_cursor: str | None


class AnnouncementQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    status: Literal["scheduled", "sending", "sent", "cancelled"] | None = None


# ---- operators' view of deliveries ----------------------------------------------------------------------


class DeliveryQuery(PageQuery):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    status: DeliveryStatus | None = None
    channel: Literal["push", "wechat"] | None = None
    from_: Instant | None = Field(None, alias="from")
    to: Instant | None = None


class DeliverySummaryQuery(QueryModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    channel: Literal["push", "wechat"] | None = None
    from_: Instant | None = Field(None, alias="from")
    to: Instant | None = None


class DeliveryRecord(BaseModel):
    id: int
    notification_id: int
    kind: str
    channel: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    provider_ref: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class DeliveryList(BaseModel):
    items: list[DeliveryRecord]
    next_cursor: str | None


class DeliverySummary(BaseModel):
    # per channel, the number of deliveries in each status (statuses with none are left out)
    channels: dict[str, dict[str, int]]
    total: int
