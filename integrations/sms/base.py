"""The SMS gateway interface and the message templates both implementations share.

Templates live here, not at the provider, so the sandbox shows exactly the text a resident would receive and
a template or parameter the code gets wrong fails the same way (ValueError, a bug) whichever provider is on.
"""

from __future__ import annotations

import string
from typing import Protocol

# {sign} is the configured signature (sms.sign_name); every other field is a parameter of send().
TEMPLATES: dict[str, str] = {
    "login_code": "【{sign}】您的登录验证码为{code}，5分钟内有效。请勿泄露给他人。",
    "reset_password_code": "【{sign}】您正在重置密码，验证码为{code}，5分钟内有效。请勿泄露给他人。",
    "bind_code": "【{sign}】您正在绑定手机号，验证码为{code}，5分钟内有效。请勿泄露给他人。",
    "delete_account_code": "【{sign}】您正在注销账号，验证码为{code}，5分钟内有效。如非本人操作请勿提供。",
}


class SmsGateway(Protocol):
    """Sends one text message to a phone; returns the provider's message id."""

    async def send(self, phone: str, template: str, params: dict[str, str]) -> str: ...

    async def aclose(self) -> None: ...


def template_fields(template: str) -> set[str]:
    """The parameters a template needs (without {sign}); ValueError for an unknown template."""
    try:
        text = TEMPLATES[template]
    except KeyError:
        raise ValueError(f"unknown SMS template {template!r}") from None
    return {field for _, field, _, _ in string.Formatter().parse(text) if field} - {"sign"}


def render(template: str, sign: str, params: dict[str, str]) -> str:
    """The full text of a message; ValueError for an unknown template or a missing parameter."""
    missing = template_fields(template) - params.keys()
    if missing:
        raise ValueError(f"SMS template {template!r} needs {sorted(missing)}")
    return TEMPLATES[template].format_map({**params, "sign": sign})
