"""Statistics for admins (the whole city) and staff (their own department)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.kit.auth import CLERKS, require
from api.kit.docs import documented
from api.kit.http import json_model, parse_query
from api.kit.scopes import work_scope
from api.stats import service
from api.stats.schemas import ApplicationStats, ApplicationStatsQuery, SatisfactionQuery, SatisfactionReport

bp = Blueprint("stats")


@bp.get("/stats/satisfaction")
@documented(
    "满意率：按网点(point)、窗口人员(staff)、事项(item)或部门(department)分组；期间为 [from, to)",
    tag="stats",
    query=SatisfactionQuery,
    ok=SatisfactionReport,
)
@require(*CLERKS)
async def satisfaction(request: Request) -> HTTPResponse:
    query = parse_query(request, SatisfactionQuery)
    scope = await work_scope(request)
    return json_model(
        await service.satisfaction(
            request.app.ctx.services.kernel.cipher, scope, query.group_by, query.start, query.end
        )
    )


@bp.get("/stats/applications")
@documented(
    "办件统计：期间内提交、受理、办结数，办结率、按时办结率、超期数、退回补正数",
    tag="stats",
    query=ApplicationStatsQuery,
    ok=ApplicationStats,
)
@require(*CLERKS)
async def applications(request: Request) -> HTTPResponse:
    query = parse_query(request, ApplicationStatsQuery)
    scope = await work_scope(request)
    return json_model(await service.application_figures(scope, query))
