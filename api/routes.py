"""The one place where every area's blueprint is grouped under /api/v1."""

from __future__ import annotations

from sanic import Blueprint

from api.catalog.handlers import bp as catalog
from api.identity.handlers import bp as identity
from api.identity.handlers import wellknown
from api.identity.staff_handlers import bp as identity_staff
from api.sandbox.handlers import bp as sandbox


def api_v1(*, embedded: bool) -> Blueprint:
    parts = [catalog, identity, identity_staff]
    if embedded:
        parts.append(sandbox)
    return Blueprint.group(*parts, url_prefix="/api/v1")  # type: ignore[return-value]


def root() -> list[Blueprint]:
    return [wellknown]
