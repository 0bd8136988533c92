"""The errors of API keys."""

from __future__ import annotations

from api.kit.errors import NotFoundError


class ApiKeyNotFound(NotFoundError):
    code = "api_key_not_found"
    title = "没有这个 API Key"
