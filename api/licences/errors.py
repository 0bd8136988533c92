"""The errors of e-licences, one class per code a client can get."""

from __future__ import annotations

from typing import Any

from api.kit.errors import Conflict, InvalidInput, NotFoundError


class LicenceNotFound(NotFoundError):
    code = "licence_not_found"
    title = "没有这本证照"


class IssuerUntrusted(Conflict):
    code = "issuer_untrusted"
    title = "该证照的签发机构不在信任名单中，不能亮证"


class LicenceNotValid(Conflict):
    code = "licence_not_valid"
    title = "该证照当前无效(已过期、吊销或暂扣)，不能亮证"


class PresentationRefused(InvalidInput):
    """A token that cannot be verified at all: not ours (forged), past its three minutes, or a single-use one
    seen before. A 422 (SECURITY row 13) whose body still says `valid: false` and the `reason`."""

    code = "presentation_refused"
    title = "亮证码无效"
    MESSAGES: dict[str, str] = {
        "forged": "亮证码无效：不是本平台签发的或已被篡改",
        "expired_token": "亮证码已过期，请让持证人刷新",
        "replayed": "该亮证码为一次性使用，已被核验过",
    }

    def __init__(self, reason: str) -> None:
        extra: dict[str, Any] = {"valid": False, "reason": reason}
        super().__init__(self.MESSAGES[reason], **extra)
        self.reason = reason
