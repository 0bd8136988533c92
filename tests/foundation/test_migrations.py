"""The models and the latest migration must agree: a model change without its migration fails here."""

from __future__ import annotations

from tortoise.context import get_current_context
from tortoise.migrations.autodetector import MigrationAutodetector

from api.kit.db import tortoise_config


async def test_models_match_the_latest_migration(app, client, settings):
    apps_config = tortoise_config(settings)["apps"]
    detector = MigrationAutodetector(get_current_context().apps, apps_config)
    pending = await detector.changes()
    described = [
        op.describe() if hasattr(op, "describe") else repr(op) for w in pending for op in w.operations
    ]
    assert pending == [], f"models changed without a migration (run `make migrations`): {described}"


async def test_migrations_created_every_model_table(app, client):
    from tortoise import Tortoise, connections

    conn = connections.get("default")
    models = list(Tortoise.apps["models"].values())
    assert len(models) >= 15  # catalogue, identity and applications tables
    for model in models:
        await conn.execute_query(f'SELECT COUNT(*) FROM "{model._meta.db_table}"')
