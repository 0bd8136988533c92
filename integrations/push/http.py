"""App push over JPush's REST API v3 (极光推送), as JPush documents it.

    POST {base_url}/v3/push                      Authorization: Basic base64(app_key:master_secret)
    {"platform": ["android", "ios", "hmos"], "audience": {"registration_id": [...]},
     "notification": {"android": {...}, "ios": {...}, "hmos": {...}},
     "options": {"time_to_live": 86400, "apns_production": true, "third_party_channel": {...}},
     "cid": "<from GET /v3/push/cid>"}
    200 {"sendno": "0", "msg_id": "18100000000001"}
    4xx/5xx {"error": {"code": 1011, "message": "cannot find user by this audience"}}

    GET {base_url}/v3/push/cid?count=N&type=push  200 {"cidlist": ["<cid>", ...]}   (N ≤ 1000)

    GET {report_url}/v3/received/detail?msg_ids=1613113584,1229760629   (at most 100 ids)
    200 [{"msg_id": "1613113584", "jpush_received": 62, "android_pns_sent": 12, "android_pns_received": 12,
          "ios_apns_sent": 11, "ios_apns_received": 5, "ios_msg_received": 3, "hmos_hmpns_received": 1,
          "quickapp_jpush_received": 1, "quickapp_pns_received": 0, ...}, ...]
    (counts are null where JPush has none yet; a message is received when any `*_received` count is > 0)

A push with a `cid` JPush has seen is not sent again: the delivery worker takes one cid per delivery and
keeps it, so a retry after a crash between the push and its mark sends nothing twice (`sendno` is only
echoed back and `override_msg_id` replaces an earlier message; neither de-duplicates). `apns_production`
is always given (JPush's default is the production environment). The phone makers' own channels are the
only ones that reach an app that is not running, and they cap operational messages: a service notice goes
as a personal/system message (`third_party_channel`, per maker as configured in `[push]`).

Errors: 1011 (no device behind these registration ids) is a PushRejected with them as `gone`; 1000, 1030,
2002, HTTP 429 and 5xx, timeouts and lost connections are PushRetryable, and so are our configuration's
refusals (1004, 1008, 2004, HTTP 401/403: fixing the configuration loses nothing); any other error is
PushRejected.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from api.kit.config import PushSection
from api.kit.errors import UpstreamError, UpstreamTimeout
from integrations.http import UpstreamStatus, call_json, make_client, validate_answer
from integrations.push.base import PushMessage, PushRejected, PushRetryable

NAME = "极光推送"
AUDIENCE_GONE = 1011
# JPush busy (1000, 1030), rate limited (2002); and our own configuration refused (1004 authentication,
# 1008 app key, 2004 address not allowed): retried until the horizon, so that fixing it loses nothing
RETRYABLE_CODES = frozenset({1000, 1030, 2002, 1004, 1008, 2004})


class _Pushed(BaseModel):
    model_config = ConfigDict(extra="ignore")

    msg_id: str | int
    sendno: str | int | None = None


class _Received(BaseModel):
    model_config = ConfigDict(extra="allow")

    msg_id: str | int


# JPush's own channel, the phone makers', APNs, HarmonyOS and quick apps: each a count of devices reached
RECEIVED_COUNTS = (
    "jpush_received",
    "android_pns_received",
    "ios_apns_received",
    "ios_msg_received",
    "hmos_hmpns_received",
    "quickapp_jpush_received",
    "quickapp_pns_received",
)
REPORT_MAX = 100
CIDS_MAX = 1000


class _Cids(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cidlist: list[str] = Field(min_length=1)


def jpush_body(message: PushMessage, cid: str, settings: PushSection) -> dict[str, Any]:
    """The JSON of one push as JPush v3 takes it."""
    extras = dict(message.extras)
    notification: dict[str, Any] = {}
    if "android" in message.platforms:
        notification["android"] = {"alert": message.body, "title": message.title, "extras": extras}
    if "ios" in message.platforms:
        notification["ios"] = {
            "alert": {"title": message.title, "body": message.body},
            "sound": "default",
            "extras": extras,
        }
    if "hmos" in message.platforms:
        notification["hmos"] = {
            "alert": message.body,
            "title": message.title,
            "category": settings.hmos_category,
            "extras": extras,
        }
    channel = settings.service_channels if message.service_notice else settings.operational_channels
    return {
        "platform": list(message.platforms),
        "audience": {"registration_id": list(message.registration_ids)},
        "notification": notification,
        "options": {
            "time_to_live": message.time_to_live,
            "apns_production": settings.apns_production,
            "third_party_channel": {maker: dict(fields) for maker, fields in channel.items()},
        },
        "cid": cid,
    }


class HttpPush:
    """A PushGateway talking to JPush at `settings.base_url`."""

    def __init__(
        self,
        settings: PushSection,
        client: httpx.AsyncClient | None = None,
        report_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        secret = base64.b64encode(f"{settings.app_key}:{settings.master_secret}".encode()).decode()
        self._headers = {"Authorization": f"Basic {secret}"}
        self._owns_client = client is None
        self._client = client or make_client(settings.base_url, settings.timeout)
        self._report = report_client or make_client(settings.report_url, settings.timeout)
        self._owns_report = report_client is None

    async def new_cid(self) -> str:
        return (await self.new_cids(1))[0]

    async def new_cids(self, count: int) -> list[str]:
        if not 1 <= count <= CIDS_MAX:
            raise ValueError(f"JPush gives 1 to {CIDS_MAX} cids a call")
        try:
            data = await call_json(
                self._client,
                "GET",
                "/v3/push/cid",
                name=NAME,
                params={"count": str(count), "type": "push"},
                headers=self._headers,
            )
        except (UpstreamError, UpstreamTimeout) as exc:
            raise PushRetryable(f"JPush cid: {exc.detail}") from None
        try:
            cids = validate_answer(_Cids, data, name=NAME).cidlist
        except UpstreamError:
            raise PushRetryable("JPush cid: an answer without cidlist") from None
        if len(cids) < count:
            raise PushRetryable(f"JPush cid: {len(cids)} of {count} asked")
        return cids[:count]

    async def push(self, message: PushMessage, cid: str) -> str:
        if not message.registration_ids:
            raise ValueError("a push needs at least one registration id")
        try:
            data = await call_json(
                self._client,
                "POST",
                "/v3/push",
                name=NAME,
                json=jpush_body(message, cid, self._settings),
                headers=self._headers,
            )
        except UpstreamStatus as exc:
            raise _classified(exc, message) from None
        except UpstreamTimeout:
            raise PushRetryable("JPush: timed out") from None
        except UpstreamError as exc:
            # a lost or refused connection, or an answer we cannot read: JPush may not have it
            raise PushRetryable(f"JPush: {exc.detail}") from None
        try:
            return str(validate_answer(_Pushed, data, name=NAME).msg_id)
        except UpstreamError:
            raise PushRetryable("JPush: an answer without msg_id") from None

    async def received(self, msg_ids: list[str]) -> dict[str, int]:
        if len(msg_ids) > REPORT_MAX:
            raise ValueError(f"at most {REPORT_MAX} msg_ids a call")
        if not msg_ids:
            return {}
        try:
            data = await call_json(
                self._report,
                "GET",
                "/v3/received/detail",
                name=NAME,
                params={"msg_ids": ",".join(msg_ids)},
                headers=self._headers,
            )
        except (UpstreamError, UpstreamTimeout) as exc:
            raise PushRetryable(f"JPush report: {exc.detail}") from None
        if not isinstance(data, list):
            raise PushRetryable("JPush report: not a list")
        out: dict[str, int] = {}
        for item in data:
            try:
                row = _Received.model_validate(item)
            except ValueError:
                continue  # one entry we cannot read says nothing of the others
            extra = row.model_extra or {}
            counts = [extra.get(name) for name in RECEIVED_COUNTS]
            out[str(row.msg_id)] = sum(c for c in counts if isinstance(c, int) and not isinstance(c, bool))
        return out

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
        if self._owns_report:
            await self._report.aclose()


def _classified(exc: UpstreamStatus, message: PushMessage) -> Exception:
    answer: dict[str, Any] = exc.answer if isinstance(exc.answer, dict) else {}
    error = answer.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    text = f"JPush HTTP {exc.upstream_status}" + (f", error {code}" if code is not None else "")
    if code == AUDIENCE_GONE:
        return PushRejected(text, gone=message.registration_ids)
    if code in RETRYABLE_CODES or exc.upstream_status in (401, 403, 429) or exc.upstream_status >= 500:
        return PushRetryable(text)
    return PushRejected(text)
