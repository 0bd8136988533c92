"""The inbox of whoever is signed in: residents, grid workers, staff and admins alike."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.kit.auth import ADMINS, CLERKS, require
from api.kit.docs import documented
from api.kit.http import json_model, no_content, page_limit, parse_body, parse_query
from api.notifications import announcements, service
from api.notifications.schemas import (
    AnnouncementIn,
    AnnouncementList,
    AnnouncementOut,
    AnnouncementQuery,
    DeliveryList,
    DeliveryQuery,
    DeliverySummary,
    DeliverySummaryQuery,
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


# ---- announcements (staff) and the operators' view (admins) -----------------------------------------------


@bp.post("/admin/announcements")
@documented(
    "发布公告(政务信息)：发送范围、渠道、定时 send_at；由后台分批发送，不在请求中群发",
    tag="admin",
    body=AnnouncementIn,
    ok=AnnouncementOut,
    status=201,
)
@require(*CLERKS)
async def publish(request: Request) -> HTTPResponse:
    body = parse_body(request, AnnouncementIn)
    row = await announcements.publish(request.ctx.principal, body)
    response = json_model(row, status=201)
    response.headers["Location"] = f"/api/v1/admin/announcements/{row.id}"
    return response


@bp.get("/admin/announcements")
@documented(
    "公告列表(最新在前)，含各渠道各状态的发送数", tag="admin", query=AnnouncementQuery, ok=AnnouncementList
)
@require(*CLERKS)
async def announcement_list(request: Request) -> HTTPResponse:
    query = parse_query(request, AnnouncementQuery)
    return json_model(
        await announcements.announcements(query.status, query.cursor, page_limit(request, query.limit))
    )


@bp.get("/admin/announcements/<announcement_id:id>")
@documented("一条公告及其发送情况", tag="admin", ok=AnnouncementOut, errors=(404,))
@require(*CLERKS)
async def announcement(request: Request, announcement_id: int) -> HTTPResponse:
    return json_model(await announcements.announcement(announcement_id))


@bp.post("/admin/announcements/<announcement_id:id>/cancel")
@documented("撤回尚未开始发送的公告", tag="admin", ok=AnnouncementOut, errors=(404, 409))
@require(*CLERKS)
async def cancel_announcement(request: Request, announcement_id: int) -> HTTPResponse:
    return json_model(await announcements.cancel(announcement_id))


@bp.get("/admin/deliveries")
@documented(
    "各渠道发送记录(最新在前)：status=、channel=、from/to 创建时间",
    tag="admin",
    query=DeliveryQuery,
    ok=DeliveryList,
)
@require(*ADMINS)
async def delivery_list(request: Request) -> HTTPResponse:
    query = parse_query(request, DeliveryQuery)
    return json_model(
        await announcements.deliveries(
            query.status, query.channel, query.from_, query.to, query.cursor, page_limit(request, query.limit)
        )
    )


@bp.get("/admin/deliveries/summary")
@documented("发送记录按渠道与状态汇总", tag="admin", query=DeliverySummaryQuery, ok=DeliverySummary)
@require(*ADMINS)
async def delivery_summary(request: Request) -> HTTPResponse:
    query = parse_query(request, DeliverySummaryQuery)
    return json_model(await announcements.summary(query.channel, query.from_, query.to))
