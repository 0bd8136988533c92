"""好差评 after a decision, and consultations / complaints / suggestions with the clerks' answers."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.feedback import service
from api.feedback.schemas import (
    ComplaintIn,
    ComplaintList,
    ComplaintOut,
    ComplaintReplyIn,
    EvaluationIn,
    EvaluationOut,
    MyComplaintsQuery,
    WorkComplaintsQuery,
)
from api.kit.auth import CLERKS, Role, require
from api.kit.docs import documented
from api.kit.http import json_model, page_limit, parse_body, parse_query
from api.kit.idempotency import idempotent
from api.kit.scopes import work_scope

bp = Blueprint("feedback")


@bp.post("/applications/<application_id:id>/evaluation")
@documented(
    "好差评：办结后申请人评价一次(五级 level，或大厅评价器四键 pad_key)；渠道取自登录渠道；支持 Idempotency-Key",
    tag="feedback",
    body=EvaluationIn,
    ok=EvaluationOut,
    status=201,
    errors=(404, 409),
    idempotent=True,
)
@require(Role.RESIDENT)
@idempotent
async def evaluate(request: Request, application_id: int) -> HTTPResponse:
    body = parse_body(request, EvaluationIn)
    return json_model(await service.evaluate(request.ctx.principal, application_id, body), status=201)


@bp.post("/complaints")
@documented(
    "咨询、投诉或建议(答复期限按工作日计)；支持 Idempotency-Key",
    tag="feedback",
    body=ComplaintIn,
    ok=ComplaintOut,
    status=201,
    errors=(409,),
    idempotent=True,
)
@require(Role.RESIDENT)
@idempotent
async def file_complaint(request: Request) -> HTTPResponse:
    body = parse_body(request, ComplaintIn)
    kernel = request.app.ctx.services.kernel
    return json_model(
        await service.file_complaint(kernel.settings, kernel.calendar, request.ctx.principal, body),
        status=201,
    )


@bp.get("/complaints")
@documented(
    "我的咨询投诉(最新在前)",
    tag="feedback",
    query=MyComplaintsQuery,
    ok=ComplaintList,
)
@require(Role.RESIDENT)
async def my_complaints(request: Request) -> HTTPResponse:
    query = parse_query(request, MyComplaintsQuery)
    return json_model(
        await service.my_complaints(
            request.ctx.principal, query.status, query.cursor, page_limit(request, query.limit)
        )
    )


@bp.get("/work/complaints")
@documented(
    "工作台咨询投诉(窗口：本部门的；未指定部门的仅管理员；管理员：全部)，先到期的在前",
    tag="work",
    query=WorkComplaintsQuery,
    ok=ComplaintList,
)
@require(*CLERKS)
async def work_complaints(request: Request) -> HTTPResponse:
    query = parse_query(request, WorkComplaintsQuery)
    scope = await work_scope(request)
    return json_model(
        await service.work_complaints(scope, query.status, query.cursor, page_limit(request, query.limit))
    )


@bp.post("/work/complaints/<complaint_id:id>/reply")
@documented(
    "答复咨询投诉(一次，仅承办部门的窗口或管理员；未指定部门的仅管理员)；答复写入居民的消息",
    tag="work",
    body=ComplaintReplyIn,
    ok=ComplaintOut,
    errors=(404, 409),
)
@require(*CLERKS)
async def reply(request: Request, complaint_id: int) -> HTTPResponse:
    body = parse_body(request, ComplaintReplyIn)
    scope = await work_scope(request)
    return json_model(await service.reply(request.ctx.principal, scope, complaint_id, body))
