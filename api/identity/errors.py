"""Every error the identity area answers with, one class per stable `code`.

Status, code and message are what clients have always been given; the 422s about one field also name the
field and say what is wrong with it."""

from __future__ import annotations

from typing import ClassVar

from api.kit.errors import Conflict, Forbidden, InvalidInput, NotFoundError, Unauthorized
from api.kit.pii import id_number_problem, normalize_id_number

# ---- 401 -----------------------------------------------------------------------------------------------


class InvalidGrant(Unauthorized):
    """A code, password, WeChat code or refresh token that does not sign in; the same answer whatever the
    reason, so it tells nothing about the account."""

    code = "invalid_grant"
    title = "凭证无效或已过期"


class WeChatNotBound(Unauthorized):
    """The openid has no account: the answer carries a binding ticket for the SMS sign-in that binds it."""

    code = "wechat_not_bound"
    title = "该微信尚未绑定账号，请用手机验证码登录以完成绑定"

    def __init__(self, ticket: str, expires_in: int) -> None:
        super().__init__(binding_ticket=ticket, binding_ticket_expires_in=expires_in)


# ---- 403 -----------------------------------------------------------------------------------------------


class AccountDisabled(Forbidden):
    code = "account_disabled"
    title = "账号已停用"


class ChannelNotAllowed(Forbidden):
    """The account's roles may not sign in on this channel (api/identity/channels.py: handheld is for grid
    workers only)."""

    code = "channel_not_allowed"
    title = "该账号不能通过此渠道登录"


# ---- 404 -----------------------------------------------------------------------------------------------


class BindingNotFound(NotFoundError):
    code = "binding_not_found"
    title = "没有绑定微信"


class ResidentNotFound(NotFoundError):
    code = "resident_not_found"
    title = "没有找到该居民"


# ---- 409 -----------------------------------------------------------------------------------------------


class PhoneTaken(Conflict):
    code = "phone_taken"
    title = "该手机号已有账号"


class IdNumberTaken(Conflict):
    code = "id_number_taken"
    title = "该身份证号码已在其他账号完成实名认证"


class WeChatBoundElsewhere(Conflict):
    code = "wechat_bound_elsewhere"
    title = "该微信已绑定其他账号"


class WeChatAlreadyBound(Conflict):
    code = "wechat_already_bound"
    title = "账号已绑定其他微信，请先解绑"


class RefreshInProgress(Conflict):
    """A replay, within `security.refresh_reuse_window` seconds, of the refresh token its family rotated last:
    a client that fired one refresh twice. Nothing is revoked; the first answer's tokens stay good."""

    code = "refresh_in_progress"
    title = "该刷新令牌刚刚已被使用，请使用新的令牌"


class ResidentRealNameRequired(Conflict):
    """A clerk checks in person a resident who has not verified his real name yet (kit's 403 of the same
    code is about the caller's own level)."""

    code = "real_name_required"
    title = "该居民尚未完成实名认证"


# ---- 422 about one field -------------------------------------------------------------------------------


class FieldProblem(InvalidInput):
    """A 422 with its own code about one field: the field and what to say about it belong to the class."""

    field: ClassVar[str]
    message: ClassVar[str]

    def __init__(self, detail: str | None = None, *, message: str | None = None) -> None:
        super().__init__(detail, errors=[{"field": self.field, "message": message or self.message}])


class InvalidBindingTicket(FieldProblem):
    code = "invalid_binding_ticket"
    title = "绑定凭证无效或已过期"
    field = "binding_ticket"
    message = "无效或已过期"


class InvalidCode(FieldProblem):
    code = "invalid_code"
    title = "验证码不正确或已过期"
    field = "sms_code"
    message = "不正确或已过期"


class WrongPassword(FieldProblem):
    code = "wrong_password"
    title = "原密码不正确"
    field = "old_password"
    message = "不正确"


class WrongAccountPassword(WrongPassword):
    """The password given as proof of a deletion (`DELETE /me`): the same code, its own field."""

    field = "password"


class InvalidDeletionCode(InvalidCode):
    """The SMS code given as proof of a deletion (`DELETE /me`): the same code as any wrong code."""

    message = "不正确或已过期(应为 delete_account 验证码)"


class InvalidIdNumber(FieldProblem):
    """An ID number that fails GB 11643 (length, birth date, check digit): the problem is named."""

    code = "invalid_id_number"
    title = "身份证号码无效"
    field = "id_number"
    message = "无效"

    def __init__(self, problem: str) -> None:
        super().__init__(f"{self.title}：{problem}", message=problem)

    @classmethod
    def check(cls, id_number: str) -> str:
        """The number in its canonical form (full-width digits, a lower-case x, stray spaces put right);
        this error when it is not a valid number."""
        normalized = normalize_id_number(id_number)
        problem = id_number_problem(normalized)
        if problem is not None:
            raise cls(problem)
        return normalized


class RealNameMismatch(FieldProblem):
    code = "real_name_mismatch"
    title = "姓名与身份证号码不匹配"
    field = "name"
    message = "与人口库不一致"


class IdCardMismatch(FieldProblem):
    code = "id_card_mismatch"
    title = "证件号码与账号实名信息不一致"
    field = "id_number"
    message = "与实名信息不一致"


class InvalidWeChatCode(FieldProblem):
    """A signed-in caller's bad WeChat code is bad input (422), not a 401 that would end the app's session."""

    code = "invalid_wechat_code"
    title = "微信授权码无效或已使用"
    field = "code"
    message = "无效或已使用"
