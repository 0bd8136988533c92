"""The licence types we show and the fields a holder may disclose, each with its place in a token.

`FIELDS` is append-only: a field's position is its bit in a presentation token's field mask, so a token made
before a field was added still means what it meant. `holder`, `number` and `validity` belong to every type;
the others to the types that carry them (a mask naming a field the licence does not have discloses nothing
more: the field is absent from that licence)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LicenceType:
    code: str
    name: str
    fields: tuple[str, ...]  # the type's own fields, beyond holder, number and validity


LICENCE_TYPES: dict[str, LicenceType] = {
    t.code: t
    for t in (
        LicenceType("id_card", "居民身份证", ("gender", "birth_date", "address")),
        LicenceType("household_register", "居民户口簿", ("address", "relation")),
        LicenceType("marriage_certificate", "结婚证", ("spouse",)),
        LicenceType("driving_licence", "机动车驾驶证", ("vehicle_class",)),
        LicenceType("vehicle_licence", "机动车行驶证", ("plate_number", "vehicle_type")),
        LicenceType("real_estate_certificate", "不动产权证书", ("property_address", "area")),
        LicenceType("business_licence", "营业执照", ("company_name", "credit_code")),
        LicenceType("social_security_card", "社会保障卡", ()),
        LicenceType(
            "disability_certificate", "中华人民共和国残疾人证", ("disability_category", "disability_grade")
        ),
        LicenceType("birth_medical_certificate", "出生医学证明", ("child_name", "born_on")),
        LicenceType("elderly_card", "老年人优待证", ()),
    )
}

# append only: the position is the bit in the token (README "E-licences")
FIELDS: tuple[str, ...] = (
    "holder",
    "number",
    "validity",
    "gender",
    "birth_date",
    "address",
    "relation",
    "spouse",
    "vehicle_class",
    "plate_number",
    "vehicle_type",
    "property_address",
    "area",
    "company_name",
    "credit_code",
    "disability_category",
    "disability_grade",
    "child_name",
    "born_on",
)
FIELD_BIT = {name: 1 << i for i, name in enumerate(FIELDS)}
COMMON_FIELDS = ("holder", "number", "validity")
# what a presentation shows when the holder chose nothing: who he is and until when the licence is good
DEFAULT_FIELDS = ("holder", "validity")
# personal data that a verifier without a clerk's standing sees masked
MASKED_FOR_OTHERS = frozenset(
    {"holder", "number", "address", "property_address", "birth_date", "spouse", "child_name"}
)


def fields_of(type_code: str) -> tuple[str, ...]:
    kind = LICENCE_TYPES.get(type_code)
    return COMMON_FIELDS + (kind.fields if kind else ())


def mask_of(fields: tuple[str, ...] | list[str]) -> int:
    mask = 0
    for name in fields:
        mask |= FIELD_BIT[name]
    return mask


def fields_in(mask: int) -> tuple[str, ...]:
    return tuple(name for name in FIELDS if mask & FIELD_BIT[name])


def type_name(code: str) -> str:
    kind = LICENCE_TYPES.get(code)
    return kind.name if kind else code
