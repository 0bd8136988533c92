"""The e-licence library over HTTP: our documented protocol for the city's 电子证照库 sharing service.

    POST {base_url}/v1/licences/query
    X-Api-Key: {api_key}
    Content-Type: application/json
    {"holder_name": "张三", "holder_id_number": "360502198803152015"}

    200 {"licences": [Record, ...]}            (an empty list when the library holds none)

    GET {base_url}/v1/licences/{id}            ({id} percent-encoded; library ids are opaque strings)
    X-Api-Key: {api_key}

    200 {"licence": Record}
    404 {"error": "not_found"}                 (the library holds no licence of that id)

    Record = {"id": str, "type": str, "issuer": str, "issuer_name": str, "number": str, "holder_name": str,
              "holder_id_number": str, "valid_from": "YYYY-MM-DD", "valid_until": "YYYY-MM-DD" | null,
              "data": {str: str}, "alg": str, "signature": str (base64),
              "status": "valid" | "revoked" | "suspended"}

Both calls are reads: the query is a POST only to keep the holder's name and ID number out of the URL, and is
retried like a GET. Any other status (a 404 whose body is not `{"error": "not_found"}` included: a wrong
`base_url` must not make every licence vanish), a redirect, another shape or value, a record of another holder
than the one asked for (or of another id than the one fetched), a body over 1 MB or no answer within
`licences.timeout` seconds is a failure (UpstreamError 502 / UpstreamTimeout 504). Keys a record has beyond
those listed are ignored.

The client does not check signatures (the service does, with `check_signature` and its own trust list) and
alters no field, so a record comes back exactly as its issuer signed it. The holder's name and ID number are
personal data: they go in the POST body only, never in a URL, a log line or an exception message.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.kit.config import LicencesSection
from api.kit.errors import UpstreamError
from integrations.elicence.base import LibraryLicence
from integrations.http import UpstreamStatus, call_json, make_client, validate_answer

NAME = "电子证照库"
QUERY_PATH = "/v1/licences/query"
LICENCE_PATH = "/v1/licences/{id}"

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: object) -> date:
    """A JSON string YYYY-MM-DD as a date: nothing else (no timestamps, no week dates, no times), so the
    date's isoformat() gives back the very string the issuer signed."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("a date must be a string YYYY-MM-DD")
    return date.fromisoformat(value)


_Date = Annotated[date, BeforeValidator(_iso_date)]


class _Record(BaseModel):
    model_config = ConfigDict(strict=True)

    id: str = Field(min_length=1)
    type: str
    issuer: str
    issuer_name: str
    number: str
    holder_name: str
    holder_id_number: str
    valid_from: _Date
    valid_until: _Date | None
    data: dict[str, str]
    alg: str
    signature: str
    status: Literal["valid", "revoked", "suspended"]

    def licence(self) -> LibraryLicence:
        return LibraryLicence(
            id=self.id,
            type=self.type,
            issuer=self.issuer,
            issuer_name=self.issuer_name,
            number=self.number,
            holder_name=self.holder_name,
            holder_id_number=self.holder_id_number,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            data=dict(self.data),
            alg=self.alg,
            signature=self.signature,
            status=self.status,
        )


class _QueryAnswer(BaseModel):
    model_config = ConfigDict(strict=True)

    licences: list[_Record]


class _LicenceAnswer(BaseModel):
    model_config = ConfigDict(strict=True)

    licence: _Record


def _same_id_number(a: str, b: str) -> bool:
    return a.strip().upper() == b.strip().upper()


class HttpLibrary:
    """A LicenceLibrary talking to the sharing service at `settings.base_url`."""

    def __init__(self, settings: LicencesSection, client: httpx.AsyncClient | None = None) -> None:
        self._api_key = settings.api_key
        self._owns_client = client is None
        self._client = client or make_client(settings.base_url, settings.timeout)

    async def licences_of(self, holder_name: str, holder_id_number: str) -> list[LibraryLicence]:
        data = await call_json(
            self._client,
            "POST",
            QUERY_PATH,
            name=NAME,
            idempotent=True,
            json={"holder_name": holder_name, "holder_id_number": holder_id_number},
            headers={"X-Api-Key": self._api_key},
        )
        records = validate_answer(_QueryAnswer, data, name=NAME).licences
        if any(not _same_id_number(r.holder_id_number, holder_id_number) for r in records):
            # someone else's licence in this person's wallet would be a leak: the answer is wrong, not shown
            raise UpstreamError(f"{NAME}返回了不属于该持证人的证照")
        return [r.licence() for r in records]

    async def licence(self, licence_id: str) -> LibraryLicence | None:
        if licence_id in {"", ".", ".."}:
            return None  # not an id a path can name (".." would climb out of /v1/licences/); none such
        try:
            data = await call_json(
                self._client,
                "GET",
                LICENCE_PATH.format(id=quote(licence_id, safe="")),
                name=NAME,
                headers={"X-Api-Key": self._api_key},
            )
        except UpstreamStatus as refused:
            if refused.upstream_status == 404 and refused.answer == {"error": "not_found"}:
                return None
            raise
        record = validate_answer(_LicenceAnswer, data, name=NAME).licence
        if record.id != licence_id:
            raise UpstreamError(f"{NAME}返回了另一份证照")
        return record.licence()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
