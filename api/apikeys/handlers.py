"""/admin/api-keys: the keys of the other city systems (made, listed, revoked by admins)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.apikeys import service
from api.apikeys.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyList, ApiKeyOut, ApiKeyQuery
from api.kit.auth import ADMINS, client_ip, require
from api.kit.docs import documented
from api.kit.http import json_model, parse_body, parse_query

bp = Blueprint("apikeys")


@bp.post("/admin/api-keys")
@documented(
    "为其他城市系统创建 API Key(名称、权限、每分钟限额)；密钥只在此次返回中出现一次，仅保存其摘要",
    tag="admin",
    body=ApiKeyIn,
    ok=ApiKeyCreated,
    status=201,
)
@require(*ADMINS)
async def create_api_key(request: Request) -> HTTPResponse:
    body = parse_body(request, ApiKeyIn)
    created = await service.create(
        request.ctx.principal, body, request_id=request.ctx.request_id, ip=client_ip(request)
    )
    return json_model(created, status=201)


@bp.get("/admin/api-keys")
@documented("API Key 列表(不含密钥本身)", tag="admin", query=ApiKeyQuery, ok=ApiKeyList)
@require(*ADMINS)
async def list_api_keys(request: Request) -> HTTPResponse:
    query = parse_query(request, ApiKeyQuery)
    return json_model(await service.listed(query.include_revoked))


@bp.delete("/admin/api-keys/<key_id:id>")
@documented("吊销 API Key(立即生效；其核验记录保留)", tag="admin", ok=ApiKeyOut, errors=(404,))
@require(*ADMINS)
async def revoke_api_key(request: Request, key_id: int) -> HTTPResponse:
    revoked = await service.revoke(
        request.app.ctx.services.kernel.redis,
        request.ctx.principal,
        key_id,
        request_id=request.ctx.request_id,
        ip=client_ip(request),
    )
    return json_model(revoked)
