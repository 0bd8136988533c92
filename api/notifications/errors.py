"""The inbox's errors, one class per code a client can get."""

from __future__ import annotations

from api.kit.errors import Conflict, NotFoundError


class NotificationNotFound(NotFoundError):
    code = "notification_not_found"
    title = "没有这条消息"


class DeviceNotFound(NotFoundError):
    code = "device_not_found"
    title = "没有这台设备"


class AnnouncementNotFound(NotFoundError):
    code = "announcement_not_found"
    title = "没有这条公告"


class AnnouncementStarted(Conflict):
    code = "announcement_started"
    title = "公告已开始发送或已撤回，不能再撤回"
