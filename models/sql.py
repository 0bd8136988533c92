"""What the hand-written statements of every models module share: the driver's placeholders, a value as
tortoise would send it for a column, and which database this is."""

from __future__ import annotations

from typing import Any

from tortoise import connections
from tortoise.models import Model


def is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


class Placeholders:
    """The driver's placeholder for each value, in order ($1, $2 … on PostgreSQL, ? on SQLite): call it in
    the order the placeholders appear in the text."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.postgres else "?"


def as_db(model: type[Model], field: str, value: Any) -> Any:
    """A value as tortoise would send it for this column (its JSON text, an aware datetime)."""
    return model._meta.fields_map[field].to_db_value(value, model)
