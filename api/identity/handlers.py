"""Sign-in, the signed-in account, and the published key set."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.auth import client_ip, public, require
from api.docs import documented
from api.http import json_bytes, json_model, no_content, parse_body
from api.identity import service, sessions
from api.identity.deps import Identity
from api.identity.schemas import (
    AccountOut,
    BindingList,
    BindingOut,
    Jwks,
    LogoutIn,
    PasswordIn,
    RealNameIn,
    SmsCodeIn,
    SmsCodeOut,
    TokenIn,
    TokenOut,
    WeChatCodeIn,
)
from api.identity.service import account_view

bp = Blueprint("identity")
wellknown = Blueprint("wellknown")


def _ident(request: Request) -> Identity:
    return request.app.ctx.identity


@bp.post("/auth/sms-codes")
@documented(
    "发送短信验证码(已注册与未注册手机号回答相同)",
    tag="identity",
    body=SmsCodeIn,
    ok=SmsCodeOut,
    status=202,
    errors=(429,),
)
@public
async def send_sms_code(request: Request) -> HTTPResponse:
    body = parse_body(request, SmsCodeIn)
    expires_in, resend_after = await service.request_sms_code(
        _ident(request), body.phone, body.purpose, client_ip(request)
    )
    return json_model(SmsCodeOut(expires_in=expires_in, resend_after=resend_after), status=202)


@bp.post("/auth/token")
@documented(
    "登录/刷新：grant_type = sms_code | password | wechat_code | refresh_token",
    tag="identity",
    body=TokenIn,
    ok=TokenOut,
    errors=(401, 403, 409, 429),
)
@public
async def token(request: Request) -> HTTPResponse:
    body = parse_body(request, TokenIn)
    return json_model(await service.grant(_ident(request), body, client_ip(request)))


@bp.post("/auth/logout")
@documented("退出登录：注销该会话(整个刷新令牌族)", tag="identity", body=LogoutIn, status=204)
@public
async def logout(request: Request) -> HTTPResponse:
    body = parse_body(request, LogoutIn)
    await sessions.logout(_ident(request), body.refresh_token)
    return no_content()


@bp.get("/me")
@documented(
    "当前账号(手机号、姓名、证件号已脱敏)", tag="identity", ok=AccountOut, errors=(401,), secured=True
)
@require()
async def me(request: Request) -> HTTPResponse:
    return json_model(await account_view(_ident(request), request.ctx.account))


@bp.put("/me/password")
@documented(
    "设置或修改密码(原密码，或新的 reset_password 短信验证码)；其他会话全部注销",
    tag="identity",
    body=PasswordIn,
    status=204,
    errors=(401,),
    secured=True,
)
@require()
async def change_password(request: Request) -> HTTPResponse:
    body = parse_body(request, PasswordIn)
    await service.change_password(_ident(request), request.ctx.account, body, request.ctx.principal.session)
    return no_content()


@bp.post("/me/real-name")
@documented(
    "实名认证(核验人口基础库)",
    tag="identity",
    body=RealNameIn,
    ok=AccountOut,
    errors=(401, 409, 429),
    secured=True,
)
@require()
async def real_name(request: Request) -> HTTPResponse:
    body = parse_body(request, RealNameIn)
    return json_model(await service.verify_real_name(_ident(request), request.ctx.account, body))


@bp.get("/me/bindings")
@documented("已绑定的渠道", tag="identity", ok=BindingList, errors=(401,), secured=True)
@require()
async def bindings(request: Request) -> HTTPResponse:
    return json_model(BindingList(items=await service.bindings(request.ctx.account)))


@bp.post("/me/bindings/wechat")
@documented(
    "绑定微信(网页授权 code)",
    tag="identity",
    body=WeChatCodeIn,
    ok=BindingOut,
    status=201,
    errors=(401, 409, 422),
    secured=True,
)
@require()
async def bind_wechat(request: Request) -> HTTPResponse:
    body = parse_body(request, WeChatCodeIn)
    return json_model(await service.bind_wechat(_ident(request), request.ctx.account, body.code), status=201)


@bp.delete("/me/bindings/wechat")
@documented("解绑微信", tag="identity", status=204, errors=(401, 404), secured=True)
@require()
async def unbind_wechat(request: Request) -> HTTPResponse:
    await service.unbind_wechat(request.ctx.account)
    return no_content()


@bp.delete("/me")
@documented("注销账号：个人信息匿名化，会话全部注销", tag="identity", status=204, errors=(401,), secured=True)
@require()
async def delete_me(request: Request) -> HTTPResponse:
    await service.delete_account(_ident(request), request.ctx.account)
    return no_content()


@wellknown.get("/.well-known/jwks.json")
@documented("公钥集(按 kid)：其他系统用它验证我们的访问令牌", tag="identity", ok=Jwks)
@public
async def jwks(request: Request) -> HTTPResponse:
    return json_bytes(request.app.ctx.jwks_body, headers={"Cache-Control": "public, max-age=300"})
