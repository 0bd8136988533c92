"""Embedded mode only (404 in production): look into the sandboxes of outside systems, as a tester would."""

from __future__ import annotations

from typing import TypeVar

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.kit.auth import public
from api.kit.docs import documented
from api.kit.errors import NotFoundError
from api.kit.http import json_model, parse_body, parse_query
from api.licences import service as licences
from api.sandbox.schemas import (
    SandboxLicenceStatusIn,
    SandboxLicenceStatusOut,
    SandboxPushList,
    SandboxPushOut,
    SandboxPushQuery,
    SandboxSmsList,
    SandboxSmsOut,
    SandboxSmsQuery,
    SandboxWeChatCodeIn,
    SandboxWeChatCodeOut,
    SandboxWeChatMessageList,
    SandboxWeChatMessageOut,
    SandboxWeChatMessageQuery,
)
from integrations.elicence.sandbox import SandboxLibrary
from integrations.push.sandbox import SandboxPush
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


@bp.get("/push")
@documented(
    "沙箱极光推送发到某台设备的推送(仅内嵌模式)",
    tag="sandbox",
    query=SandboxPushQuery,
    ok=SandboxPushList,
    errors=(404,),
)
@public
async def sent_pushes(request: Request) -> HTTPResponse:
    push = _sandbox(request, request.app.ctx.services.integrations.push, SandboxPush)
    query = parse_query(request, SandboxPushQuery)
    return json_model(
        SandboxPushList(items=[SandboxPushOut(**m) for m in await push.sent_to(query.registration_id)])
    )


@bp.get("/wechat/messages")
@documented(
    "沙箱微信发给某 openid 的模板消息(仅内嵌模式)",
    tag="sandbox",
    query=SandboxWeChatMessageQuery,
    ok=SandboxWeChatMessageList,
    errors=(404,),
)
@public
async def sent_wechat_messages(request: Request) -> HTTPResponse:
    wechat = _sandbox(request, request.app.ctx.services.integrations.wechat, SandboxWeChat)
    query = parse_query(request, SandboxWeChatMessageQuery)
    messages = await wechat.messages_to(query.openid)
    return json_model(SandboxWeChatMessageList(items=[SandboxWeChatMessageOut(**m) for m in messages]))


@bp.post("/licences/<licence_id:id>/status")
@documented(
    "沙箱电子证照库：吊销、暂扣或恢复一本证照(仅内嵌模式)；默认如真实证照库一样在 status_ttl 秒内生效",
    tag="sandbox",
    body=SandboxLicenceStatusIn,
    ok=SandboxLicenceStatusOut,
    errors=(404,),
)
@public
async def set_licence_status(request: Request, licence_id: int) -> HTTPResponse:
    lic = request.app.ctx.services.licences
    library = _sandbox(request, lic.library, SandboxLibrary)
    body = parse_body(request, SandboxLicenceStatusIn)
    library_id = await licences.library_id_of(licence_id)
    if library_id is None:
        raise NotFoundError("没有这本证照")
    try:
        library.set_status(library_id, body.status)
    except KeyError:
        raise NotFoundError("沙箱证照库中没有这本证照") from None
    if body.at_once:
        await licences.forget_reads(lic, licence_id)
    return json_model(SandboxLicenceStatusOut(licence_id=licence_id, status=body.status))
