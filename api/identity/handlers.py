"""Sign-in, the signed-in account, and the published key set."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.identity import service, sessions, staff
from api.identity.deps import Identity
from api.identity.schemas import (
    AccountOut,
    AdminAccountIn,
    AuditList,
    AuditQuery,
    BindingList,
    BindingOut,
    DeleteAccountIn,
    InPersonIn,
    Jwks,
    LogoutIn,
    PasswordIn,
    RealNameIn,
    ResidentOut,
    ResidentQuery,
    SmsCodeIn,
    SmsCodeOut,
    TokenIn,
    TokenOut,
    WeChatCodeIn,
)
from api.kit.auth import ADMINS, WORK_ROLES, Principal, client_ip, public, require
from api.kit.docs import documented
from api.kit.http import json_bytes, json_model, no_content, page_limit, parse_body, parse_query

bp = Blueprint("identity")
wellknown = Blueprint("wellknown")


def _ident(request: Request) -> Identity:
    return request.app.ctx.services.identity


def _who(request: Request) -> tuple[Principal, str, str]:
    """Who acts, for the audit log: the principal, the request id and the caller's address."""
    return request.ctx.principal, request.ctx.request_id, client_ip(request)


@bp.post("/auth/sms-codes")
@documented(
    "发送短信验证码(已注册与未注册手机号回答相同)",
    tag="identity",
    body=SmsCodeIn,
    ok=SmsCodeOut,
    status=202,
    errors=(429, 502, 504),  # 502/504: the SMS gateway failed or did not answer
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
    "登录/刷新：grant_type = sms_code | password | wechat_code | wechat_ticket | refresh_token",
    tag="identity",
    body=TokenIn,
    ok=TokenOut,
    errors=(401, 403, 409, 429, 502, 504),  # 502/504: WeChat, for the wechat_code grant
)
@public
async def token(request: Request) -> HTTPResponse:
    body = parse_body(request, TokenIn)
    return json_model(await service.grant(_ident(request), body, client_ip(request), request.ctx.request_id))


@bp.post("/auth/logout")
@documented("退出登录：注销该会话(整个刷新令牌族)", tag="identity", body=LogoutIn, status=204)
@public
async def logout(request: Request) -> HTTPResponse:
    body = parse_body(request, LogoutIn)
    await sessions.logout(_ident(request), body.refresh_token)
    return no_content()


@bp.get("/me")
@documented("当前账号(手机号、姓名、证件号已脱敏)", tag="identity", ok=AccountOut)
@require()
async def me(request: Request) -> HTTPResponse:
    return json_bytes(
        await service.me(_ident(request), request.app.ctx.services.principals, request.ctx.account)
    )


@bp.put("/me/password")
@documented(
    "设置或修改密码(原密码，或新的 reset_password 短信验证码)；其他会话全部注销",
    tag="identity",
    body=PasswordIn,
    status=204,
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
    errors=(409, 429, 502, 504),  # 502/504: the population database failed or did not answer
)
@require()
async def real_name(request: Request) -> HTTPResponse:
    body = parse_body(request, RealNameIn)
    return json_model(
        await service.verify_real_name(_ident(request), request.ctx.account, body, *_who(request))
    )


@bp.get("/me/bindings")
@documented("已绑定的渠道", tag="identity", ok=BindingList)
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
    errors=(409, 502, 504),  # 502/504: WeChat failed or did not answer
)
@require()
async def bind_wechat(request: Request) -> HTTPResponse:
    body = parse_body(request, WeChatCodeIn)
    return json_model(await service.bind_wechat(_ident(request), request.ctx.account, body.code), status=201)


@bp.delete("/me/bindings/wechat")
@documented("解绑微信", tag="identity", status=204, errors=(404,))
@require()
async def unbind_wechat(request: Request) -> HTTPResponse:
    await service.unbind_wechat(request.ctx.account)
    return no_content()


@bp.delete("/me")
@documented(
    "注销账号(须在同一请求中提供密码或 delete_account 短信验证码)：个人信息匿名化，会话全部注销",
    tag="identity",
    body=DeleteAccountIn,
    status=204,
)
@require()
async def delete_me(request: Request) -> HTTPResponse:
    body = parse_body(request, DeleteAccountIn)
    await service.delete_account(_ident(request), request.ctx.account, body, *_who(request))
    return no_content()


@wellknown.get("/.well-known/jwks.json")
@documented("公钥集(按 kid)：其他系统用它验证我们的访问令牌", tag="identity", ok=Jwks)
@public
async def jwks(request: Request) -> HTTPResponse:
    return json_bytes(request.app.ctx.services.jwks_body, headers={"Cache-Control": "public, max-age=300"})


# Back office: admins create staff accounts and read the audit log; clerks find and check residents.

staff_bp = Blueprint("identity_staff")


@staff_bp.post("/admin/accounts")
@documented(
    "创建网格员/窗口人员/管理员账号并绑定网点或部门",
    tag="admin",
    body=AdminAccountIn,
    ok=AccountOut,
    status=201,
    errors=(409,),
)
@require(*ADMINS)
async def create_account(request: Request) -> HTTPResponse:
    body = parse_body(request, AdminAccountIn)
    return json_model(await staff.create_account(_ident(request), body, *_who(request)), status=201)


@staff_bp.get("/work/residents")
@documented(
    "按身份证号精确查找居民(脱敏，记入审计日志)",
    tag="work",
    query=ResidentQuery,
    ok=ResidentOut,
    errors=(404,),
)
@require(*WORK_ROLES)
async def find_resident(request: Request) -> HTTPResponse:
    query = parse_query(request, ResidentQuery)
    return json_model(await staff.find_resident(_ident(request), query.id_number, *_who(request)))


@staff_bp.post("/work/residents/<resident_id:id>/in-person-verification")
@documented(
    "现场核验身份证(实名等级 3)",
    tag="work",
    body=InPersonIn,
    ok=ResidentOut,
    errors=(404, 409),
)
@require(*WORK_ROLES)
async def in_person(request: Request, resident_id: int) -> HTTPResponse:
    body = parse_body(request, InPersonIn)
    return json_model(
        await staff.verify_in_person(_ident(request), resident_id, body.id_number, *_who(request))
    )


@staff_bp.get("/admin/audit")
@documented(
    "审计日志(account= 作为操作人或对象，from/to 时间范围)",
    tag="admin",
    query=AuditQuery,
    ok=AuditList,
)
@require(*ADMINS)
async def audit_log(request: Request) -> HTTPResponse:
    query = parse_query(request, AuditQuery)
    return json_model(
        await staff.audit_entries(
            query.account, query.from_, query.to, query.cursor, page_limit(request, query.limit)
        )
    )
