"""Public catalogue: departments, service items with their guides, service points."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from api.catalog import service
from api.catalog.schemas import (
    DepartmentList,
    DepartmentsQuery,
    ItemGuide,
    ItemList,
    ItemsQuery,
    PointList,
    PointOut,
    PointsQuery,
)
from api.kit.auth import public_read
from api.kit.docs import documented
from api.kit.http import json_bytes, page_limit, parse_query

bp = Blueprint("catalog")


def _cache(request: Request) -> service.CatalogCache:
    return request.app.ctx.services.catalog


@bp.get("/departments")
@documented("部门列表", tag="catalogue", query=DepartmentsQuery, ok=DepartmentList)
@public_read
async def list_departments(request: Request) -> HTTPResponse:
    parse_query(request, DepartmentsQuery)
    return json_bytes(await service.list_departments(_cache(request)))


@bp.get("/items")
@documented(
    "事项列表(可按名称/编码、部门、办件类型、社区可办筛选)", tag="catalogue", query=ItemsQuery, ok=ItemList
)
@public_read
async def list_items(request: Request) -> HTTPResponse:
    query = parse_query(request, ItemsQuery)
    return json_bytes(await service.list_items(_cache(request), query, page_limit(request, query.limit)))


@bp.get("/items/<code:str>")
@documented("事项办事指南(材料、依据、收费、时限、流程)", tag="catalogue", ok=ItemGuide, errors=(404,))
@public_read
async def get_item(request: Request, code: str) -> HTTPResponse:
    return json_bytes(await service.get_item(_cache(request), code))


@bp.get("/points")
@documented(
    "服务网点列表(可按区县、社区、特色服务筛选，near=纬度,经度 按距离排序)",
    tag="catalogue",
    query=PointsQuery,
    ok=PointList,
)
@public_read
async def list_points(request: Request) -> HTTPResponse:
    query = parse_query(request, PointsQuery)
    return json_bytes(await service.list_points(_cache(request), query, page_limit(request, query.limit)))


@bp.get("/points/<code:str>")
@documented("服务网点详情", tag="catalogue", ok=PointOut, errors=(404,))
@public_read
async def get_point(request: Request, code: str) -> HTTPResponse:
    return json_bytes(await service.get_point(_cache(request), code))
