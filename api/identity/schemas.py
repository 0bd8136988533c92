"""Identity shapes. Requests are strict: unknown fields are refused, clients never set roles or levels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    RootModel,
    ValidationError,
    field_validator,
    model_validator,
)

from api.kit.auth import Role
from api.kit.clock import Instant
from api.kit.http import PageQuery
from api.kit.ids import QueryId
from api.kit.pii import is_mainland_mobile
from api.kit.unions import members, tagged_errors

Channel = Literal["app", "wechat", "handheld"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _phone(value: str) -> str:
    if not is_mainland_mobile(value):
        raise ValueError("应为11位中国大陆手机号")
    return value


# the document's words for an identity number as kit.pii.id_number_problem holds it (after NFKC and strip)
_ID_NUMBER: dict[str, Any] = {
    "pattern": "^[0-9]{6}(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]$",
    "description": "18 位居民身份证号码：出生日期真实，末位为 GB 11643 校验码(不符答复 422 invalid_id_number)",
}

# the document's words for _strong_password (ASCII letters and digits there; the rule takes any)
_STRONG: dict[str, Any] = {"pattern": "^(?=.*[0-9])(?=.*[A-Za-z])", "description": "字母和数字都要有"}


def _strong_password(value: str) -> str:
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        raise ValueError("密码需同时包含字母和数字")
    return value


Phone = Annotated[
    str,
    Field(
        min_length=11,
        max_length=11,
        description="中国大陆手机号",
        json_schema_extra={"pattern": "^1[3-9][0-9]{9}$"},  # as is_mainland_mobile holds it
    ),
    AfterValidator(_phone),
]


class SmsCodeIn(_In):
    phone: Phone
    purpose: Literal["login", "reset_password", "bind", "delete_account"] = Field(
        description="delete_account: the fresh proof `DELETE /me` asks for (sent only to an active account)"
    )


class SmsCodeOut(BaseModel):
    expires_in: int
    resend_after: int


# ---- POST /auth/token: one body per grant_type ---------------------------------------------------------


class SmsCodeGrant(_In):
    """A code sent by SMS (`POST /auth/sms-codes`, purpose login); the first sign-in creates the account.
    With the binding ticket of a refused WeChat sign-in (or of the web authorisation's callback), the account
    is bound to that WeChat as well: then the code is one of purpose `bind` (or, as before, `login`)."""

    grant_type: Literal["sms_code"]
    phone: Phone
    code: str = Field(min_length=1, max_length=256)
    channel: Channel
    binding_ticket: str | None = Field(None, min_length=10, max_length=128)


class PasswordGrant(_In):
    """The password set through `PUT /me/password`."""

    grant_type: Literal["password"]
    phone: Phone
    password: str = Field(min_length=1, max_length=128)
    channel: Channel


class WeChatCodeGrant(_In):
    """A WeChat web-authorisation code: signs in the account bound to its openid, or answers 401
    wechat_not_bound with a binding ticket for the SMS sign-in that binds it."""

    grant_type: Literal["wechat_code"]
    code: str = Field(min_length=1, max_length=256)
    channel: Literal["wechat"]


class WeChatTicketGrant(_In):
    """The one-time sign-in ticket `GET /wechat/oauth/callback` hands the H5 page (in its `#` fragment) when
    the WeChat is bound: valid `wechat.signin_ticket_ttl` seconds, used once."""

    grant_type: Literal["wechat_ticket"]
    ticket: str = Field(min_length=10, max_length=128)
    channel: Literal["wechat"]


class RefreshTokenGrant(_In):
    """A refresh token, used once: the answer carries its successor."""

    grant_type: Literal["refresh_token"]
    refresh_token: str = Field(min_length=10, max_length=256)


Grant = Annotated[
    SmsCodeGrant | PasswordGrant | WeChatCodeGrant | WeChatTicketGrant | RefreshTokenGrant,
    Field(discriminator="grant_type"),
]


class TokenIn(RootModel[Grant]):
    """Sign in or refresh: `grant_type` says which of the bodies this is, and so which fields it needs."""

    # 422s name fields as the client wrote them: pydantic puts the grant in front of a member's field
    # (`sms_code.code`) and names no field when grant_type is missing or unknown
    @model_validator(mode="wrap")
    @classmethod
    def _client_locations(cls, data: Any, handler: ModelWrapValidatorHandler[TokenIn]) -> TokenIn:
        try:
            return handler(data)
        except ValidationError as exc:
            errors = tagged_errors(exc, data, "grant_type", _GRANTS)
            raise ValidationError.from_exception_data(cls.__name__, errors) from None


_GRANTS = members(Grant, "grant_type")


class BindingOut(BaseModel):
    channel: Literal["wechat"]
    external_id: str = Field(description="openid, masked")
    has_unionid: bool
    created_at: datetime


class AccountOut(BaseModel):
    id: int
    phone: str | None = Field(description="masked")
    roles: list[Role]
    real_name_level: int = Field(
        description="1 phone verified, 2 verified with the population database, 3 seen in person"
    )
    name: str | None = Field(description="masked")
    id_number: str | None = Field(description="masked")
    bindings: list[BindingOut]
    department: str | None = None
    points: list[str] = []


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    account: AccountOut


class LogoutIn(_In):
    refresh_token: str = Field(min_length=10, max_length=256)


class PasswordIn(_In):
    new_password: str = Field(min_length=8, max_length=64, json_schema_extra=_STRONG)
    old_password: str | None = Field(None, max_length=128)
    sms_code: str | None = Field(
        None, pattern=r"^\d{6}$", description="a fresh reset_password code instead of the old password"
    )

    _strong = field_validator("new_password")(_strong_password)


class PasswordProof(_In):
    """The account's password."""

    password: str = Field(min_length=1, max_length=128)


class SmsCodeProof(_In):
    """A fresh code sent for purpose delete_account (`POST /auth/sms-codes`)."""

    sms_code: str = Field(pattern=r"^\d{6}$")


_PROOF_NEEDED = "须提供密码 password 或注销验证码 sms_code 之一"


class DeleteAccountIn(RootModel[PasswordProof | SmsCodeProof]):
    """Fresh proof, in the same request, that the account's holder asks for the deletion: the password or a
    delete_account SMS code, exactly one of them."""

    # 422s name the client's fields: the member the body's key chose, or `password` when it gave neither or both
    @model_validator(mode="wrap")
    @classmethod
    def _client_locations(
        cls, data: Any, handler: ModelWrapValidatorHandler[DeleteAccountIn]
    ) -> DeleteAccountIn:
        try:
            return handler(data)
        except ValidationError:
            keys = set(data) & {"password", "sms_code"} if isinstance(data, dict) else set()
            if len(keys) == 1:
                member = PasswordProof if keys == {"password"} else SmsCodeProof
                try:
                    member.model_validate(data)
                except ValidationError as exc:
                    raise ValidationError.from_exception_data(
                        cls.__name__, [_detail(e) for e in exc.errors()]
                    ) from None
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    {
                        "type": "value_error",
                        "loc": ("password",),
                        "input": data,
                        "ctx": {"error": _PROOF_NEEDED},
                    }
                ],
            ) from None


def _detail(error: Any) -> Any:
    detail = {"type": error["type"], "loc": error["loc"], "input": error["input"]}
    if "ctx" in error:
        detail["ctx"] = error["ctx"]
    return detail


class RealNameIn(_In):
    name: str = Field(min_length=2, max_length=32)
    id_number: str = Field(min_length=15, max_length=18, json_schema_extra=_ID_NUMBER)


class WeChatCodeIn(_In):
    code: str = Field(min_length=1, max_length=256)


class BindingList(BaseModel):
    items: list[BindingOut]


# ---- staff side ----------------------------------------------------------------------------------------


class AdminAccountIn(_In):
    phone: Phone
    roles: list[Literal["grid_worker", "staff", "admin"]] = Field(min_length=1, max_length=3)
    department: str | None = Field(None, max_length=64, description="department code, required for staff")
    points: list[str] = Field(
        default_factory=list, max_length=50, description="service point codes, required for grid workers"
    )
    password: str | None = Field(None, min_length=8, max_length=64, json_schema_extra=_STRONG)

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: str | None) -> str | None:
        # the same rule as a password a person sets himself
        return None if value is None else _strong_password(value)


class ResidentQuery(PageQuery):
    id_number: str = Field(min_length=15, max_length=18, json_schema_extra=_ID_NUMBER)


class ResidentOut(BaseModel):
    id: int
    name: str | None
    id_number: str | None
    phone: str | None
    real_name_level: int


class InPersonIn(_In):
    id_number: str = Field(
        min_length=15,
        max_length=18,
        json_schema_extra={
            **_ID_NUMBER,
            "description": "read from the ID card in front of the clerk; " + _ID_NUMBER["description"],
        },
    )


class AuditQuery(PageQuery):
    account: QueryId | None = None
    from_: Instant | None = Field(None, alias="from")
    to: Instant | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: int | None
    actor_role: str
    action: str
    subject: int | None
    request_id: str
    detail: dict


class AuditList(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


class Jwks(BaseModel):
    keys: list[dict]
