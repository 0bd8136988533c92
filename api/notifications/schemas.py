"""Shapes of the inbox."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

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
