"""Cases: residents submit and follow theirs; grid workers and staff work the queue of their scope."""

from __future__ import annotations

from typing import TypeVar

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic_ext import openapi

from api.applications import materials, service, states
from api.applications.deps import Cases
from api.applications.files import ALLOWED
from api.applications.schemas import (
    ActionIn,
    ApplicationIn,
    ApplicationList,
    ApplicationOut,
    MaterialOut,
    MyApplicationsQuery,
    WithdrawIn,
    WorkApplicationsQuery,
)
from api.kit.answer import Answer
from api.kit.auth import WORK_ROLES, Role, client_ip, require
from api.kit.docs import content, documented
from api.kit.errors import InvalidInput, UnsupportedMediaType
from api.kit.http import json_bytes, json_model, page_limit, parse_body, parse_query
from api.kit.idempotency import idempotent
from api.kit.scopes import work_scope

V = TypeVar("V")

bp = Blueprint("applications")


def _cases(request: Request) -> Cases:
    return request.app.ctx.services.cases


@bp.post("/applications")
@documented(
    "提交申请(任一社区网点或网上)；支持 Idempotency-Key",
    tag="applications",
    body=ApplicationIn,
    ok=ApplicationOut,
    status=201,
    errors=(409,),
    idempotent=True,
)
@require(Role.RESIDENT, real_name_level=2)
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
)
@require(Role.RESIDENT)
async def mine(request: Request) -> HTTPResponse:
    query = parse_query(request, MyApplicationsQuery)
    return json_model(
        await service.mine(
            request.ctx.principal, query.status, query.cursor, page_limit(request, query.limit)
        )
    )


@bp.get("/applications/<application_id:id>")
@documented(
    "我的一个办件(含时间线 events)",
    tag="applications",
    ok=ApplicationOut,
    errors=(404,),
)
@require(Role.RESIDENT)
async def get_mine(request: Request, application_id: int) -> HTTPResponse:
    app = await service.own(request.ctx.principal, application_id)
    return json_model(await service.view(_cases(request), app))


@bp.post("/applications/<application_id:id>/resubmit")
@documented("补正后重新提交", tag="applications", ok=ApplicationOut, errors=(404, 409))
@require(Role.RESIDENT)
async def resubmit(request: Request, application_id: int) -> HTTPResponse:
    return json_model(
        await service.applicant_action(_cases(request), request.ctx.principal, application_id, "resubmit", {})
    )


@bp.post("/applications/<application_id:id>/withdraw")
@documented(
    "撤回申请(作出决定前)",
    tag="applications",
    body=WithdrawIn,
    ok=ApplicationOut,
    errors=(404, 409),
)
@require(Role.RESIDENT)
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
)
@require(*WORK_ROLES)
async def work_queue(request: Request) -> HTTPResponse:
    query = parse_query(request, WorkApplicationsQuery)
    scope = await work_scope(request)
    return json_bytes(
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


@bp.get("/work/applications/<application_id:id>")
@documented("工作台办件详情", tag="work", ok=ApplicationOut, errors=(404,))
@require(*WORK_ROLES)
async def work_get(request: Request, application_id: int) -> HTTPResponse:
    scope = await work_scope(request)
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


@bp.post("/work/applications/<application_id:id>/actions")
@documented(
    "办件操作：" + " | ".join(states.WORK_ACTIONS),
    tag="work",
    body=ActionIn,
    ok=ApplicationOut,
    errors=(404, 409),
)
@require(*WORK_ROLES)
async def work_action(request: Request, application_id: int) -> HTTPResponse:
    body = parse_body(request, ActionIn).root
    scope = await work_scope(request)
    return json_model(await service.act(_cases(request), request.ctx.principal, scope, application_id, body))


# Materials of a case: the applicant uploads (multipart) and downloads his own; clerks download in scope.

materials_bp = Blueprint("materials")

UPLOAD_BODY = {
    "multipart/form-data": {
        "type": "object",
        "required": ["material_code", "file"],
        "properties": {
            "material_code": {"type": "string", "maxLength": 32, "description": "办事指南所列材料编码"},
            "file": {
                "type": "string",
                "format": "binary",
                "description": "JPEG、PNG 或 PDF(按内容判断)；文件名不被使用",
            },
        },
    }
}
DOWNLOAD_OK = {kind: {"type": "string", "format": "binary"} for kind in ALLOWED}


def _one(values: list[V] | None, field: str) -> V | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput(errors=[{"field": field, "message": "只能提交一个"}])
    return values[0]


def _attachment(download: materials.Download) -> HTTPResponse:
    return Answer(
        download.body,
        status=200,
        content_type=download.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{download.filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@materials_bp.post("/applications/<application_id:id>/materials")
@openapi.body(UPLOAD_BODY, required=True)
@openapi.response(200, {"application/json": content(MaterialOut)}, "同一材料的同一文件已上传过：答复原记录")
@documented(
    "上传申请材料(multipart：material_code、file)；仅待受理或退回补正时；类型按内容判断，大小与总量受限",
    tag="applications",
    ok=MaterialOut,
    status=201,
    errors=(404, 409, 413, 415, 422, 429),
)
@require(Role.RESIDENT)
async def upload(request: Request, application_id: int) -> HTTPResponse:
    content_type, _, params = (request.content_type or "").partition(";")
    if content_type.strip().lower() != "multipart/form-data":
        raise UnsupportedMediaType("请求体应为 multipart/form-data")
    if "boundary=" not in params.lower():
        # Sanic would log a traceback for each such request (a way to flood the error log): refuse it first
        raise UnsupportedMediaType("multipart/form-data 须带 boundary 参数")
    code = _one(request.form.getlist("material_code") if request.form else None, "material_code")
    file = _one(request.files.getlist("file") if request.files else None, "file")
    # the client's file name and declared type are never used: type by content, name by sha256
    out, created = await materials.upload(
        _cases(request),
        request.ctx.principal,
        application_id,
        code.strip() if isinstance(code, str) else None,
        file.body if file is not None else None,
    )
    return json_model(out, status=201 if created else 200)


@materials_bp.get("/applications/<application_id:id>/materials/<material_id:id>")
@openapi.response(200, DOWNLOAD_OK, "文件内容(attachment)")
@documented("下载我的办件的一份材料(附件方式)", tag="applications", errors=(404,))
@require(Role.RESIDENT)
async def download_mine(request: Request, application_id: int, material_id: int) -> HTTPResponse:
    return _attachment(
        await materials.download_own(_cases(request), request.ctx.principal, application_id, material_id)
    )


@materials_bp.get("/work/applications/<application_id:id>/materials/<material_id:id>")
@openapi.response(200, DOWNLOAD_OK, "文件内容(attachment)")
@documented("工作台下载办件材料(附件方式)", tag="work", errors=(404,))
@require(*WORK_ROLES)
async def download_work(request: Request, application_id: int, material_id: int) -> HTTPResponse:
    scope = await work_scope(request)
    return _attachment(
        await materials.download_in_scope(
            _cases(request),
            request.ctx.principal,
            scope,
            application_id,
            material_id,
            request_id=request.ctx.request_id,
            ip=client_ip(request),
        )
    )
