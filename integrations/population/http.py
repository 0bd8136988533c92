"""The population database over HTTP: our documented protocol for the city's 人口基础库 gateway.

    POST {base_url}/v1/identity/verify
    X-Api-Key: {api_key}
    Content-Type: application/json
    {"name": "张三", "id_number": "360502198803152015"}

    200 {"result": "match" | "mismatch" | "not_found"}

Any other status, a redirect, another shape or value, a body over 1 MB or no answer within
`population.timeout` seconds is a failure (UpstreamError 502 / UpstreamTimeout 504): a real-name check never
passes by default. The name and ID number are personal data: they go in the body only, never in a URL, a log
line or an exception message.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict

from api.kit.config import PopulationSection
from integrations.http import call_json, make_client, validate_answer
from integrations.population.base import VerifyResult

NAME = "人口基础库"


class _VerifyAnswer(BaseModel):
    model_config = ConfigDict(strict=True)

    result: Literal["match", "mismatch", "not_found"]


class HttpPopulation:
    """A PopulationDatabase talking to the gateway at `settings.base_url`."""

    def __init__(self, settings: PopulationSection, client: httpx.AsyncClient | None = None) -> None:
        self._api_key = settings.api_key
        self._owns_client = client is None
        self._client = client or make_client(settings.base_url, settings.timeout)

    async def verify(self, name: str, id_number: str) -> VerifyResult:
        data = await call_json(
            self._client,
            "POST",
            "/v1/identity/verify",
            name=NAME,
            json={"name": name, "id_number": id_number},
            headers={"X-Api-Key": self._api_key},
        )
        return validate_answer(_VerifyAnswer, data, name=NAME).result

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
