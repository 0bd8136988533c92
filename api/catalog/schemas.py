"""Catalogue shapes: what the API answers, and the strict rows of a catalogue file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.kit.http import PageQuery, QueryModel

ItemKind = Literal["same_day", "committed"]
Channel = Literal["online", "counter", "community"]
DeliveryMode = Literal["pickup", "mail", "grid_worker"]
PointService = Literal[
    "appointment",
    "extended_hours",
    "green_channel",
    "door_to_door",
    "joint_handling",
    "online",
    "weekend_lunchtime",
]
MaterialForm = Literal["original", "copy", "electronic"]


# ---- answers --------------------------------------------------------------------------------------------


class DepartmentOut(BaseModel):
    code: str
    name: str
    phone: str


class DepartmentList(BaseModel):
    items: list[DepartmentOut]
    next_cursor: str | None = None


class FeeOut(BaseModel):
    amount_fen: int
    basis: str


class ItemSummary(BaseModel):
    code: str
    name: str
    department: DepartmentOut
    kind: ItemKind
    promised_days: int
    statutory_days: int
    fee: FeeOut | None = Field(description="null: free of charge")
    channels: list[Channel]
    community_level: bool
    delivery_modes: list[DeliveryMode]


class ItemList(BaseModel):
    items: list[ItemSummary]
    next_cursor: str | None


class GuideMaterial(BaseModel):
    """A material the guide asks for (the OpenAPI component; an application's uploaded one is `MaterialOut`)."""

    code: str
    name: str
    basis: str
    form: MaterialForm
    copies: int
    required: bool
    notes: str
    sample: str | None
    licence_type: str | None = Field(
        None, description="the e-licence type that may stand in for it (免提交: attach the licence, no copy)"
    )


MaterialOut = GuideMaterial


class ProcessStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=1000)


class ItemGuide(ItemSummary):
    legal_basis: str
    scope: Literal["city_wide"]
    conditions: list[str]
    process: list[ProcessStep]
    materials: list[GuideMaterial]


class PointOut(BaseModel):
    code: str
    name: str
    level: Literal["city", "community"]
    district: dict[str, str] = Field(description="{code, name}")
    community: dict[str, str] | None = Field(description="{code, name}; null for the city centre")
    address: str
    latitude: float
    longitude: float
    phone: str
    opening_hours: str
    services: list[PointService]
    distance_m: int | None = Field(None, description="only with ?near=")


class PointList(BaseModel):
    items: list[PointOut]
    next_cursor: str | None


# ---- query strings --------------------------------------------------------------------------------------


# the document's words for _lat_lng: decimal latitude -90 … 90, a comma, longitude -180 … 180
_LAT = r"[-+]?(90(\.0+)?|[1-8]?[0-9](\.[0-9]+)?)"
_LNG = r"[-+]?(180(\.0+)?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]+)?)"
_NEAR = f"^{_LAT},{_LNG}$"


class ItemsQuery(PageQuery):
    q: str | None = Field(None, max_length=64)
    department: str | None = Field(None, max_length=64)
    kind: ItemKind | None = None
    community_level: bool | None = None


class PointsQuery(PageQuery):
    district: str | None = Field(None, max_length=12)
    community: str | None = Field(None, max_length=12)
    service: PointService | None = None
    near: str | None = Field(
        None,
        max_length=64,
        description="lat,lng — sorts by distance and adds distance_m",
        json_schema_extra={"pattern": _NEAR},
    )

    @field_validator("near")
    @classmethod
    def _lat_lng(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.split(",")
        try:
            lat, lng = (float(p) for p in parts)
        except ValueError:
            raise ValueError("应为 纬度,经度，例如 27.8175,114.9170") from None
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise ValueError("纬度应在 -90..90，经度应在 -180..180")
        return f"{lat},{lng}"


class DepartmentsQuery(QueryModel):
    pass


# ---- the catalogue file ---------------------------------------------------------------------------------

_code = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DistrictRow(_Row):
    code: str = Field(pattern=r"^\d{6}$")
    name: str = Field(min_length=1, max_length=64)


class DepartmentRow(_Row):
    code: str = _code
    name: str = Field(min_length=1, max_length=128)
    phone: str = Field("", max_length=32)


class CommunityRow(_Row):
    code: str = Field(pattern=r"^\d{12}$")
    name: str = Field(min_length=1, max_length=128)
    district: str
    kind: Literal["community", "village"]


class PointRow(_Row):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = Field(min_length=1, max_length=128)
    level: Literal["city", "community"]
    community: str | None
    district: str
    address: str = Field(min_length=1, max_length=256)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    phone: str = Field("", max_length=32)
    opening_hours: str = Field("", max_length=256)
    services: list[PointService]

    @model_validator(mode="after")
    def _community_matches_level(self) -> PointRow:
        if self.level == "community" and not self.community:
            raise ValueError("社区网点必须填写所属社区(community)")
        return self


class FeeRow(_Row):
    amount_fen: int = Field(ge=1)
    basis: str = Field(min_length=1)


class MaterialRow(_Row):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = Field(min_length=1, max_length=128)
    basis: str
    form: MaterialForm
    copies: int = Field(ge=1, le=99)
    required: bool
    notes: str
    sample: str | None
    licence_type: str | None = Field(None, max_length=32)


class ItemRow(_Row):
    code: str = _code
    name: str = Field(min_length=1, max_length=128)
    department: str
    kind: ItemKind
    statutory_days: int = Field(ge=0, le=365)
    promised_days: int = Field(ge=0, le=365)
    legal_basis: str = Field(min_length=1)
    fee: FeeRow | None
    channels: list[Channel] = Field(min_length=1)
    scope: Literal["city_wide"]
    delivery_modes: list[DeliveryMode] = Field(min_length=1)
    conditions: list[str] = Field(min_length=1)
    process: list[ProcessStep] = Field(min_length=1)
    materials: list[MaterialRow] = Field(min_length=1)

    @model_validator(mode="after")
    def _days(self) -> ItemRow:
        if self.promised_days > self.statutory_days:
            raise ValueError("承诺时限(promised_days)不能超过法定时限(statutory_days)")
        if self.kind == "committed" and self.promised_days < 1:
            raise ValueError("承诺件的承诺时限(promised_days)至少 1 个工作日")
        codes = [m.code for m in self.materials]
        if len(codes) != len(set(codes)):
            raise ValueError("材料编码(materials.code)重复")
        return self
