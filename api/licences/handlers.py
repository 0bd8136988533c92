"""/licences (the holder's), /licence-verifications (the verifier's) and /.well-known/licence-keys.json."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.kit.auth import WORK_ROLES, Role, client_ip, public, require
from api.kit.docs import documented
from api.kit.http import json_bytes, json_model, page_limit, parse_body, parse_query
from api.licences import service
from api.licences.deps import Licences
from api.licences.schemas import (
    LicenceDetail,
    LicenceList,
    PresentationIn,
    PresentationOut,
    VerificationIn,
    VerificationList,
    VerificationOut,
    VerificationsQuery,
)

bp = Blueprint("licences")
wellknown = Blueprint("licence_keys")
VERIFY_SCOPE = "licences:verify"


class LicenceKeys(BaseModel):
    keys: list[dict[str, Any]]


def _licences(request: Request) -> Licences:
    return request.app.ctx.services.licences


@bp.get("/licences")
@documented(
    "我的电子证照(来自电子证照库，号码与姓名脱敏)；证照库不可用时返回最近一次的结果并标明 stale",
    tag="licences",
    ok=LicenceList,
    errors=(502, 504),
)
@require(Role.RESIDENT, real_name_level=2)
async def my_licences(request: Request) -> HTTPResponse:
    return json_model(await service.my_licences(_licences(request), request.ctx.principal))


@bp.get("/licences/<licence_id:id>")
@documented("一本电子证照(脱敏)", tag="licences", ok=LicenceDetail, errors=(404, 502, 504))
@require(Role.RESIDENT, real_name_level=2)
async def my_licence(request: Request, licence_id: int) -> HTTPResponse:
    return json_model(await service.my_licence(_licences(request), request.ctx.principal, licence_id))


@bp.post("/licences/<licence_id:id>/presentations")
@documented(
    "亮证：生成 3 分钟内有效的亮证码(二维码 SVG)，只披露所选字段，可设为一次性",
    tag="licences",
    body=PresentationIn,
    ok=PresentationOut,
    status=201,
    errors=(404, 409, 429, 502, 504),
)
@require(Role.RESIDENT, real_name_level=2)
async def present(request: Request, licence_id: int) -> HTTPResponse:
    body = parse_body(request, PresentationIn)
    out = await service.present(_licences(request), request.ctx.principal, licence_id, body)
    return json_model(out, status=201)


@bp.get("/licences/<licence_id:id>/verifications")
@documented(
    "亮证记录：谁在何时核验了这本证照",
    tag="licences",
    query=VerificationsQuery,
    ok=VerificationList,
    errors=(404,),
)
@require(Role.RESIDENT, real_name_level=2)
async def verifications(request: Request, licence_id: int) -> HTTPResponse:
    query = parse_query(request, VerificationsQuery)
    out = await service.verifications(
        _licences(request), request.ctx.principal, licence_id, query.cursor, page_limit(request, query.limit)
    )
    return json_model(out)


@bp.post("/licence-verifications")
@documented(
    "核验亮证码：真伪与证照此刻的状态，以及持证人选择披露的字段(按核验方角色脱敏)；每次核验都记录在案。"
    "伪造、过期或已用过的一次性亮证码答 422(valid=false 及 reason)",
    tag="licences",
    body=VerificationIn,
    ok=VerificationOut,
    errors=(429,),
)
@require(*WORK_ROLES, api_key_scope=VERIFY_SCOPE)
async def verify(request: Request) -> HTTPResponse:
    body = parse_body(request, VerificationIn)
    lic = _licences(request)
    key = request.ctx.api_key
    if key is not None:
        verifier = service.Verifier(role="api_key", account_id=None, key_id=key.id, limit=key.rate_limit)
    else:
        principal = request.ctx.principal
        verifier = service.Verifier(
            role=principal.role,
            account_id=principal.account_id,
            key_id=None,
            limit=lic.kernel.settings.licences.verify_per_minute,
        )
    return json_model(await service.verify(lic, verifier, body.token, client_ip(request)))


@wellknown.get("/.well-known/licence-keys.json")
@documented(
    "亮证码签名公钥集(JWKS，kid 为公钥 SHA-256 的前 4 字节十六进制)：其他系统可离线验证亮证码真伪",
    tag="licences",
    ok=LicenceKeys,
)
@public
async def licence_keys(request: Request) -> HTTPResponse:
    return json_bytes(_licences(request).keys_body, headers={"Cache-Control": "public, max-age=300"})
