"""Request bodies that are discriminated unions, with 422s that read like any other body's.

pydantic puts the tag in front of every error of a member (`reject.reason`) and has errors of its own for a
missing or unknown tag; clients read a body's fields by their own names. `tagged_errors` turns the first into
the second, and a field marked `Needed("…")` reads that message when it is missing or null."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails


@dataclass(frozen=True)
class Needed:
    """On a field a member cannot do without: what a client reads when it is missing or null."""

    message: str


def members(union: Any, tag: str) -> dict[str, type[BaseModel]]:
    """Each member of an `Annotated[A | B | …, Field(discriminator=tag)]` by the value of its tag Literal,
    in the order of the union."""
    return {get_args(model.model_fields[tag].annotation)[0]: model for model in get_args(get_args(union)[0])}


def choices(values: list[str]) -> str:
    """Values as pydantic lists a Literal's: "'a', 'b' or 'c'"."""
    quoted = [repr(v) for v in values]
    return quoted[0] if len(quoted) == 1 else " or ".join([", ".join(quoted[:-1]), quoted[-1]])


def tagged_errors(
    exc: ValidationError, data: Any, tag: str, by_tag: Mapping[str, type[BaseModel]]
) -> list[InitErrorDetails]:
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        kind, loc, given = error["type"], error["loc"], error["input"]
        if kind == "union_tag_not_found":
            details.append({"type": "missing", "loc": (tag,), "input": data})
            continue
        if kind == "union_tag_invalid":
            expected = choices(list(by_tag))
            details.append(
                {"type": "literal_error", "loc": (tag,), "input": given, "ctx": {"expected": expected}}
            )
            continue
        path = loc[1:]  # the errors of the member the tag chose begin with the tag
        needed = (
            _needed(by_tag.get(str(loc[0])), path) if loc and (kind == "missing" or given is None) else None
        )
        if needed is not None:
            details.append({"type": "value_error", "loc": path, "input": given, "ctx": {"error": needed}})
            continue
        detail: InitErrorDetails = {"type": kind, "loc": path, "input": given}
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return details


def _needed(model: type[BaseModel] | None, path: tuple[int | str, ...]) -> str | None:
    field = model.model_fields.get(str(path[0])) if model is not None and len(path) == 1 else None
    return next((m.message for m in field.metadata if isinstance(m, Needed)), None) if field else None
