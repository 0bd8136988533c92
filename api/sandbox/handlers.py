"""Embedded mode only (404 in production): look into the sandboxes of outside systems, as a tester would."""

from __future__ import annotations

from typing import TypeVar

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.kit.auth import public
from api.kit.docs import documented
from api.kit.errors import NotFoundError
from api.kit.http import json_model, parse_body, parse_query
from api.sandbox.schemas import (
    SandboxSmsList,
    SandboxSmsOut,
    SandboxSmsQuery,
    SandboxWeChatCodeIn,
    SandboxWeChatCodeOut,
)
from integrations.sms.sandbox import SandboxSms
from integrations.wechat.sandbox import SandboxWeChat

bp = Blueprint("sandbox", url_prefix="/sandbox")

S = TypeVar("S")


def _sandbox(request: Request, system: object, kind: type[S]) -> S:
    """The outside system when it is its sandbox in embedded mode; 404 otherwise (as if the route were not)."""
    if not request.app.ctx.settings.embedded or not isinstance(system, kind):
        raise NotFoundError()
    return system


@bp.get("/sms")
@documented(
    "沙箱短信网关发出的短信(仅内嵌模式)",
    tag="sandbox",
    query=SandboxSmsQuery,
    ok=SandboxSmsList,
    errors=(404,),
)
@public
async def sent_sms(request: Request) -> HTTPResponse:
    sms = _sandbox(request, request.app.ctx.services.integrations.sms, SandboxSms)
    query = parse_query(request, SandboxSmsQuery)
    messages = await sms.sent_to(query.phone)
    return json_model(SandboxSmsList(items=[SandboxSmsOut(**m) for m in messages]))


@bp.post("/wechat/oauth-code")
@documented(
    "模拟微信网页授权：为某 openid 签发一次性 code(仅内嵌模式)",
    tag="sandbox",
    body=SandboxWeChatCodeIn,
    ok=SandboxWeChatCodeOut,
    status=201,
    errors=(404,),
)
@public
async def wechat_code(request: Request) -> HTTPResponse:
    wechat = _sandbox(request, request.app.ctx.services.integrations.wechat, SandboxWeChat)
    body = parse_body(request, SandboxWeChatCodeIn)
    code, openid = await wechat.issue_oauth_code(body.openid, body.unionid)
    return json_model(SandboxWeChatCodeOut(code=code, openid=openid), status=201)
