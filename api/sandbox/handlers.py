"""Embedded mode only (404 in production): look into the sandboxes of outside systems, as a tester would."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.identity.schemas import (
    SandboxSmsList,
    SandboxSmsOut,
    SandboxSmsQuery,
    SandboxWeChatCodeIn,
    SandboxWeChatCodeOut,
)
from api.kit.auth import public
from api.kit.docs import documented
from api.kit.errors import NotFoundError
from api.kit.http import json_model, parse_body, parse_query
from integrations.sms.sandbox import SandboxSms
from integrations.wechat.sandbox import SandboxWeChat

bp = Blueprint("sandbox", url_prefix="/sandbox")


def _sandbox(request: Request, name: str, kind: type) -> object:
    system = getattr(request.app.ctx.services.integrations, name)
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
    sms = _sandbox(request, "sms", SandboxSms)
    query = parse_query(request, SandboxSmsQuery)
    messages = await sms.sent_to(query.phone)  # type: ignore[attr-defined]
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
    wechat = _sandbox(request, "wechat", SandboxWeChat)
    body = parse_body(request, SandboxWeChatCodeIn)
    code, openid = await wechat.issue_oauth_code(body.openid, body.unionid)  # type: ignore[attr-defined]
    return json_model(SandboxWeChatCodeOut(code=code, openid=openid), status=201)
