"""Materials of a case: the applicant uploads (multipart) and downloads his own; clerks download in scope."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic_ext import openapi

from api.applications import materials
from api.applications.deps import Cases
from api.applications.files import ALLOWED
from api.applications.schemas import MaterialOut
from api.auth import require
from api.docs import documented
from api.errors import AppError, InvalidInput
from api.http import json_model
from api.scopes import work_scope

bp = Blueprint("materials")

WORK_ROLES = ("grid_worker", "staff", "admin")

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


def _cases(request: Request) -> Cases:
    return request.app.ctx.cases


def _one(values: list | None, field: str) -> object | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput(errors=[{"field": field, "message": "只能提交一个"}])
    return values[0]


def _attachment(download: materials.Download) -> HTTPResponse:
    return HTTPResponse(
        download.body,
        status=200,
        content_type=download.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{download.filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@bp.post("/applications/<application_id:int>/materials")
@openapi.body(UPLOAD_BODY, required=True)
@openapi.response(200, {"application/json": MaterialOut}, "同一材料的同一文件已上传过：答复原记录")
@documented(
    "上传申请材料(multipart：material_code、file)；仅待受理或退回补正时；类型按内容判断，大小与总量受限",
    tag="applications",
    ok=MaterialOut,
    status=201,
    errors=(401, 403, 404, 409, 413, 422, 429),
    secured=True,
)
@require("resident")
async def upload(request: Request, application_id: int) -> HTTPResponse:
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise AppError("请求体应为 multipart/form-data", status=415, code="unsupported_media_type")
    code = _one(request.form.getlist("material_code") if request.form else None, "material_code")
    file = _one(request.files.getlist("file") if request.files else None, "file")
    # the client's file name and declared type are never used: type by content, name by sha256
    out, created = await materials.upload(
        _cases(request),
        request.ctx.principal,
        application_id,
        code.strip() if isinstance(code, str) else None,
        file.body if file is not None else None,  # type: ignore[attr-defined]
    )
    return json_model(out, status=201 if created else 200)


@bp.get("/applications/<application_id:int>/materials/<material_id:int>")
@openapi.response(200, DOWNLOAD_OK, "文件内容(attachment)")
@documented("下载我的办件的一份材料(附件方式)", tag="applications", errors=(401, 403, 404), secured=True)
@require("resident")
async def download_mine(request: Request, application_id: int, material_id: int) -> HTTPResponse:
    return _attachment(
        await materials.download_own(_cases(request), request.ctx.principal, application_id, material_id)
    )


@bp.get("/work/applications/<application_id:int>/materials/<material_id:int>")
@openapi.response(200, DOWNLOAD_OK, "文件内容(attachment)")
@documented("工作台下载办件材料(附件方式)", tag="work", errors=(401, 403, 404), secured=True)
@require(*WORK_ROLES)
async def download_work(request: Request, application_id: int, material_id: int) -> HTTPResponse:
    scope = await work_scope(request.ctx.principal, request.ctx.account)
    return _attachment(await materials.download_in_scope(_cases(request), scope, application_id, material_id))
