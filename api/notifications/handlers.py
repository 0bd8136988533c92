"""The inbox of whoever is signed in: residents, grid workers, staff and admins alike."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.kit.auth import require
from api.kit.docs import documented
from api.kit.http import json_model, page_limit, parse_query
from api.notifications import service
from api.notifications.schemas import InboxQuery, NotificationList, NotificationOut

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
