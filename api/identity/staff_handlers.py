"""Back office: admins create staff accounts and read the audit log; clerks find and check residents."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.auth import client_ip, require
from api.docs import documented
from api.http import json_model, page_limit, parse_body, parse_query
from api.identity import staff
from api.identity.schemas import (
    AccountOut,
    AdminAccountIn,
    AuditList,
    AuditQuery,
    InPersonIn,
    ResidentOut,
    ResidentQuery,
)

bp = Blueprint("identity_staff")


def _who(request: Request) -> tuple:
    return request.ctx.principal, request.ctx.request_id, client_ip(request)


@bp.post("/admin/accounts")
@documented(
    "创建网格员/窗口人员/管理员账号并绑定网点或部门",
    tag="admin",
    body=AdminAccountIn,
    ok=AccountOut,
    status=201,
    errors=(401, 403, 409),
    secured=True,
)
@require("admin")
async def create_account(request: Request) -> HTTPResponse:
    body = parse_body(request, AdminAccountIn)
    return json_model(await staff.create_account(request.app.ctx.identity, body, *_who(request)), status=201)


@bp.get("/work/residents")
@documented(
    "按身份证号精确查找居民(脱敏，记入审计日志)",
    tag="work",
    query=ResidentQuery,
    ok=ResidentOut,
    errors=(401, 403, 404),
    secured=True,
)
@require("staff", "grid_worker", "admin")
async def find_resident(request: Request) -> HTTPResponse:
    query = parse_query(request, ResidentQuery)
    return json_model(await staff.find_resident(request.app.ctx.identity, query.id_number, *_who(request)))


@bp.post("/work/residents/<resident_id:int>/in-person-verification")
@documented(
    "现场核验身份证(实名等级 3)",
    tag="work",
    body=InPersonIn,
    ok=ResidentOut,
    errors=(401, 403, 404, 409),
    secured=True,
)
@require("staff", "grid_worker", "admin")
async def in_person(request: Request, resident_id: int) -> HTTPResponse:
    body = parse_body(request, InPersonIn)
    return json_model(
        await staff.verify_in_person(request.app.ctx.identity, resident_id, body.id_number, *_who(request))
    )


@bp.get("/admin/audit")
@documented(
    "审计日志(account= 作为操作人或对象，from/to 时间范围)",
    tag="admin",
    query=AuditQuery,
    ok=AuditList,
    errors=(401, 403),
    secured=True,
)
@require("admin")
async def audit_log(request: Request) -> HTTPResponse:
    query = parse_query(request, AuditQuery)
    return json_model(
        await staff.audit_entries(
            query.account, query.from_, query.to, query.cursor, page_limit(request, query.limit)
        )
    )
