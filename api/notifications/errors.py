"""The inbox's errors, one class per code a client can get."""

from __future__ import annotations

from api.kit.errors import NotFoundError


class NotificationNotFound(NotFoundError):
    code = "notification_not_found"
    title = "没有这条消息"


class DeviceNotFound(NotFoundError):
    code = "device_not_found"
    title = "没有这台设备"
