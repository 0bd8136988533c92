"""The one place where every area's blueprint is grouped under /api/v1."""

from __future__ import annotations

from sanic import Blueprint
from sanic.blueprint_group import BlueprintGroup

from api.apikeys.handlers import bp as apikeys
from api.applications.handlers import bp as applications
from api.applications.handlers import materials_bp as materials
from api.catalog.handlers import bp as catalog
from api.feedback.handlers import bp as feedback
from api.identity.handlers import bp as identity
from api.identity.handlers import staff_bp as identity_staff
from api.identity.handlers import wellknown
from api.licences.handlers import bp as licences
from api.licences.handlers import wellknown as licence_keys
from api.notifications.handlers import bp as notifications
from api.sandbox.handlers import bp as sandbox
from api.stats.handlers import bp as stats
from api.wechat.handlers import bp as wechat


def api_v1(*, embedded: bool) -> BlueprintGroup:
    parts = [
        catalog,
        identity,
        identity_staff,
        applications,
        materials,
        feedback,
        stats,
        notifications,
        wechat,
        licences,
        apikeys,
    ]
    if embedded:
        parts.append(sandbox)
    return Blueprint.group(*parts, url_prefix="/api/v1")


def root() -> list[Blueprint]:
    return [wellknown, licence_keys]
