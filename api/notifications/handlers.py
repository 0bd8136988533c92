"""The inbox of whoever is signed in: residents, grid workers, staff and admins alike."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.kit.auth import require
from api.kit.docs import documented
from api.kit.http import json_model, no_content, page_limit, parse_body, parse_query
from api.notifications import service
from api.notifications.schemas import (
    DeviceIn,
    DeviceList,
    DeviceOut,
    InboxQuery,
    NotificationDetail,
    NotificationList,
    NotificationOut,
    PreferencesIn,
    PreferencesOut,
)

bp = Blueprint("notifications")


@bp.get("/notifications")
@documented(
    "我的消息(最新在前)；unread=true 只看未读",
    tag="notifications",
    query=InboxQuery,
    ok=NotificationList,
)
@require()
async def inbox(request: Request) -> HTTPResponse:
    query = parse_query(request, InboxQuery)
    return json_model(
        await service.inbox(
            request.ctx.principal, query.unread, query.cursor, page_limit(request, query.limit)
        )
    )


@bp.post("/notifications/<notification_id:id64>/read")
@documented(
    "标记一条消息为已读(重复标记保留首次阅读时间)",
    tag="notifications",
    ok=NotificationOut,
    errors=(404,),
)
@require()
async def read(request: Request, notification_id: int) -> HTTPResponse:
    return json_model(await service.read(request.ctx.principal, notification_id))


@bp.get("/notifications/<notification_id:id64>")
@documented(
    "一条消息及其各渠道的发送状态(站内信、App 推送、微信)与状态历史",
    tag="notifications",
    ok=NotificationDetail,
    errors=(404,),
)
@require()
async def detail(request: Request, notification_id: int) -> HTTPResponse:
    return json_model(await service.detail(request.ctx.principal, notification_id))


@bp.post("/me/devices")
@documented(
    "登记本机的推送注册号(极光 registration id)；他人账号上的同一注册号转到本账号",
    tag="notifications",
    body=DeviceIn,
    ok=DeviceOut,
    status=201,
)
@require()
async def register_device(request: Request) -> HTTPResponse:
    body = parse_body(request, DeviceIn)
    return json_model(await service.register_device(request.ctx.principal, body), status=201)


@bp.get("/me/devices")
@documented("我登记的推送设备", tag="notifications", ok=DeviceList)
@require()
async def devices(request: Request) -> HTTPResponse:
    return json_model(DeviceList(items=await service.devices(request.ctx.principal)))


@bp.delete("/me/devices/<registration:str>")
@documented("注销一台推送设备(退出登录或卸载前)", tag="notifications", status=204, errors=(404,))
@require()
async def remove_device(request: Request, registration: str) -> HTTPResponse:
    await service.remove_device(request.ctx.principal, registration)
    return no_content()


@bp.get("/me/notification-preferences")
@documented("我的消息设置：各类消息的接收渠道与免打扰时段", tag="notifications", ok=PreferencesOut)
@require()
async def preferences(request: Request) -> HTTPResponse:
    return json_model(
        await service.preferences(request.ctx.principal, request.app.ctx.settings.notifications)
    )


@bp.put("/me/notification-preferences")
@documented(
    "修改消息设置(只改给出的类别与渠道；quiet_hours 为 null 即关闭免打扰)",
    tag="notifications",
    body=PreferencesIn,
    ok=PreferencesOut,
)
@require()
async def set_preferences(request: Request) -> HTTPResponse:
    body = parse_body(request, PreferencesIn)
    settings = request.app.ctx.settings.notifications
    return json_model(await service.set_preferences(request.ctx.principal, body, settings))
