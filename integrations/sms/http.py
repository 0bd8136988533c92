"""The SMS gateway over HTTP: our documented provider protocol.

The city's SMS platform (or an adapter in front of a commercial gateway) implements this:

    POST {base_url}/v1/sms/send
    Authorization: Bearer {api_key}
    Content-Type: application/json
    {"phone": "13800000001", "template": "login_code", "params": {"code": "123456"}, "sign_name": "新余一网通"}

    200 {"message_id": "<non-empty string>"}

Any other status, a redirect, a body that is not that JSON object, a body over 1 MB or no answer within
`sms.timeout` seconds is a failure (UpstreamError 502 / UpstreamTimeout 504). The provider renders the text
from the template name; we validate the template and its parameters first so a bug fails the same way as in
the sandbox.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, Field

from api.kit.config import SmsSection
from integrations.http import call_json, make_client, validate_answer
from integrations.sms.base import render

NAME = "短信网关"


class _SendAnswer(BaseModel):
    model_config = ConfigDict(strict=True)

    message_id: str = Field(min_length=1, max_length=200)


class HttpSms:
    """An SmsGateway talking to the provider at `settings.base_url`."""

    def __init__(self, settings: SmsSection, client: httpx.AsyncClient | None = None) -> None:
        self._api_key = settings.api_key
        self._sign = settings.sign_name
        self._owns_client = client is None
        self._client = client or make_client(settings.base_url, settings.timeout)

    async def send(self, phone: str, template: str, params: dict[str, str]) -> str:
        render(template, self._sign, params)  # unknown template or missing parameter: ValueError
        data = await call_json(
            self._client,
            "POST",
            "/v1/sms/send",
            name=NAME,
            json={"phone": phone, "template": template, "params": params, "sign_name": self._sign},
            headers={"Authorization": f"Bearer {self._api_key}"},
        )
        return validate_answer(_SendAnswer, data, name=NAME).message_id

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
