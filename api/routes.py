"""The one place where every area's blueprint is grouped under /api/v1."""

from __future__ import annotations

from sanic import Blueprint

from api.catalog.handlers import bp as catalog


def api_v1() -> Blueprint:
    return Blueprint.group(catalog, url_prefix="/api/v1")  # type: ignore[return-value]
