"""The official account's server: WeChat's callback, and the H5 pages' web authorisation and JS-SDK config."""

from __future__ import annotations

import time

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from api.kit.answer import Answer
from api.kit.auth import Role, client_ip, public, require
from api.kit.docs import documented
from api.kit.http import json_model, parse_query
from api.wechat import callback, service
from api.wechat.errors import MessageInvalid, MessageTooLarge
from api.wechat.schemas import (
    CallbackQuery,
    JssdkConfig,
    JssdkQuery,
    OAuthCallbackQuery,
    OAuthStartQuery,
    WeChatMe,
)

bp = Blueprint("wechat")
TEXT = "text/plain; charset=utf-8"
XML = "application/xml; charset=utf-8"


def _official(request: Request) -> service.Official:
    official: service.Official = request.app.ctx.services.official
    return official


@bp.get("/wechat/callback")
@documented(
    "公众号服务器地址校验：签名(token、timestamp、nonce)正确时原样返回 echostr",
    tag="wechat",
    query=CallbackQuery,
    content_type=TEXT,
    errors=(400, 403, 413),
)
@public
async def callback_check(request: Request) -> HTTPResponse:
    official = _official(request)
    query = callback.Query.of(request.args)
    callback.check_query(official.settings, query, time.time())
    echostr = request.args.get("echostr") or ""
    if not echostr or len(echostr) > 256:
        raise MessageInvalid("缺少 echostr")
    return Answer(echostr, content_type=TEXT)


@bp.post("/wechat/callback")
@documented(
    "公众号消息与事件(明文或安全模式 encrypt_type=aes)：5 秒内被动回复 XML 或 success；"
    "来不及的回复交给后台以客服消息发送",
    tag="wechat",
    query=CallbackQuery,
    errors=(400, 403, 413),
)
@public
async def callback_message(request: Request) -> HTTPResponse:
    official = _official(request)
    settings = official.settings
    declared = request.headers.get("content-length", "")
    if (declared.isdigit() and int(declared) > settings.callback_max_bytes) or len(
        request.body
    ) > settings.callback_max_bytes:
        raise MessageTooLarge()
    query = callback.Query.of(request.args)
    callback.check_query(settings, query, time.time())
    message, safe = callback.open_body(settings, query, request.body)
    reply = await service.receive(official, message)
    if reply is None:
        return Answer("success", content_type=TEXT)
    xml = reply.passive(message)
    if safe:
        xml = callback.seal(settings, xml, query.nonce, str(int(time.time())))
    return Answer(xml, content_type=XML)


@bp.get("/wechat/oauth/start")
@documented(
    "网页授权入口(snsapi_base)：重定向到微信授权页；state 已签名并与本浏览器的 Cookie 绑定",
    tag="wechat",
    query=OAuthStartQuery,
    status=302,
    errors=(413, 429),  # 413: a query longer than the server takes
)
@public
async def oauth_start(request: Request) -> HTTPResponse:
    query = parse_query(request, OAuthStartQuery)
    official = _official(request)
    await request.app.ctx.services.kernel.limiter.hit("wechat-oauth-ip", client_ip(request), 60, 60)
    target, nonce = service.oauth_start(official, query.next)
    answer = redirect(target, status=302)
    answer.add_cookie(
        service.STATE_COOKIE,
        nonce,
        path="/api/v1/wechat/oauth",
        max_age=official.settings.oauth_state_ttl,
        secure=True,
        httponly=True,
        samesite="Lax",
    )
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.get("/wechat/oauth/callback")
@documented(
    "网页授权回调：已绑定则带一次性登录票据(#signin_ticket，换令牌用 grant_type=wechat_ticket)，"
    "未绑定则带绑定票据(#binding_ticket，用 purpose=bind 的短信验证码完成绑定)返回 next 页面",
    tag="wechat",
    query=OAuthCallbackQuery,
    status=302,
    errors=(401, 403, 413, 429, 502, 504),
)
@public
async def oauth_callback(request: Request) -> HTTPResponse:
    query = parse_query(request, OAuthCallbackQuery)
    official = _official(request)
    await request.app.ctx.services.kernel.limiter.hit("wechat-oauth-ip", client_ip(request), 60, 60)
    cookie = request.cookies.get(service.STATE_COOKIE)
    target = await service.oauth_finish(official, query.code, query.state, cookie)
    answer = redirect(target, status=302)
    answer.delete_cookie(service.STATE_COOKIE, path="/api/v1/wechat/oauth")
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.get("/wechat/jssdk-config")
@documented(
    "JS-SDK 配置(wx.config)：本市 H5 页面的签名，URL 的 # 之后不参与签名",
    tag="wechat",
    query=JssdkQuery,
    ok=JssdkConfig,
    errors=(413, 429, 502, 504),
)
@public
async def jssdk_config(request: Request) -> HTTPResponse:
    query = parse_query(request, JssdkQuery)
    await request.app.ctx.services.kernel.limiter.hit("wechat-jssdk-ip", client_ip(request), 120, 60)
    return json_model(await service.jssdk_config(_official(request), query.url))


@bp.get("/wechat/me")
@documented("我的公众号状态：是否关注、最近扫码的服务网点(下次申请默认)", tag="wechat", ok=WeChatMe)
@require(Role.RESIDENT)
async def wechat_me(request: Request) -> HTTPResponse:
    return json_model(await service.me(_official(request), request.ctx.principal.account_id))
