"""Cases: residents submit and follow theirs; grid workers and staff work the queue of their scope."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.applications import service
from api.applications.deps import Cases
from api.applications.schemas import (
    ActionIn,
    ApplicationIn,
    ApplicationList,
    ApplicationOut,
    MyApplicationsQuery,
    WithdrawIn,
    WorkApplicationsQuery,
)
from api.auth import client_ip, require
from api.docs import documented
from api.http import json_model, page_limit, parse_body, parse_query
from api.idempotency import idempotent
from api.scopes import work_scope

bp = Blueprint("applications")

WORK_ROLES = ("grid_worker", "staff", "admin")


def _cases(request: Request) -> Cases:
    return request.app.ctx.cases


@bp.post("/applications")
@documented(
    "提交申请(任一社区网点或网上)；支持 Idempotency-Key",
    tag="applications",
    body=ApplicationIn,
    ok=ApplicationOut,
    status=201,
    errors=(401, 403, 409),
    secured=True,
    idempotent=True,
)
@require("resident", real_name_level=2)
@idempotent
async def submit(request: Request) -> HTTPResponse:
    body = parse_body(request, ApplicationIn)
    return json_model(await service.submit(_cases(request), request.ctx.principal, body), status=201)


@bp.get("/applications")
@documented(
    "我的办件",
    tag="applications",
    query=MyApplicationsQuery,
    ok=ApplicationList,
    errors=(401, 403),
    secured=True,
)
@require("resident")
async def mine(request: Request) -> HTTPResponse:
    query = parse_query(request, MyApplicationsQuery)
    return json_model(
        await service.mine(
            request.ctx.principal, query.status, query.cursor, page_limit(request, query.limit)
        )
    )


@bp.get("/applications/<application_id:int>")
@documented(
    "我的一个办件(含时间线 events)",
    tag="applications",
    ok=ApplicationOut,
    errors=(401, 403, 404),
    secured=True,
)
@require("resident")
async def get_mine(request: Request, application_id: int) -> HTTPResponse:
    app = await service.own(request.ctx.principal, application_id)
    return json_model(await service.view(_cases(request), app))


@bp.post("/applications/<application_id:int>/resubmit")
@documented(
    "补正后重新提交", tag="applications", ok=ApplicationOut, errors=(401, 403, 404, 409), secured=True
)
@require("resident")
async def resubmit(request: Request, application_id: int) -> HTTPResponse:
    return json_model(
        await service.applicant_action(_cases(request), request.ctx.principal, application_id, "resubmit", {})
    )


@bp.post("/applications/<application_id:int>/withdraw")
@documented(
    "撤回申请(作出决定前)",
    tag="applications",
    body=WithdrawIn,
    ok=ApplicationOut,
    errors=(401, 403, 404, 409),
    secured=True,
)
@require("resident")
async def withdraw(request: Request, application_id: int) -> HTTPResponse:
    body = parse_body(request, WithdrawIn) if request.body else WithdrawIn()
    note = {"reason": body.reason} if body.reason else {}
    return json_model(
        await service.applicant_action(
            _cases(request), request.ctx.principal, application_id, "withdraw", note
        )
    )


@bp.get("/work/applications")
@documented(
    "工作台办件队列(网格员：所负责网点；窗口：本部门；管理员：全部)，按到期时间排序",
    tag="work",
    query=WorkApplicationsQuery,
    ok=ApplicationList,
    errors=(401, 403),
    secured=True,
)
@require(*WORK_ROLES)
async def work_queue(request: Request) -> HTTPResponse:
    query = parse_query(request, WorkApplicationsQuery)
    scope = await work_scope(request.ctx.principal, request.ctx.account)
    return json_model(
        await service.queue(
            scope,
            point_code=query.point_code,
            status=query.status,
            due_before=query.due_before,
            overdue=query.overdue,
            cursor=query.cursor,
            limit=page_limit(request, query.limit),
        )
    )


@bp.get("/work/applications/<application_id:int>")
@documented("工作台办件详情", tag="work", ok=ApplicationOut, errors=(401, 403, 404), secured=True)
@require(*WORK_ROLES)
async def work_get(request: Request, application_id: int) -> HTTPResponse:
    scope = await work_scope(request.ctx.principal, request.ctx.account)
    return json_model(
        await service.work_case(
            _cases(request),
            request.ctx.principal,
            scope,
            application_id,
            request_id=request.ctx.request_id,
            ip=client_ip(request),
        )
    )


@bp.post("/work/applications/<application_id:int>/actions")
@documented(
    "办件操作：accept | return | refuse | start_review | suspend | resume | approve | reject | mark_ready | deliver | close",
    tag="work",
    body=ActionIn,
    ok=ApplicationOut,
    errors=(401, 403, 404, 409),
    secured=True,
)
@require(*WORK_ROLES)
async def work_action(request: Request, application_id: int) -> HTTPResponse:
    body = parse_body(request, ActionIn)
    scope = await work_scope(request.ctx.principal, request.ctx.account)
    return json_model(await service.act(_cases(request), request.ctx.principal, scope, application_id, body))
