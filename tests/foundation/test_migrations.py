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


UPGRADE = """
import asyncio, sys
from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate
from api.kit.config import load_settings
from api.kit.db import tortoise_config

OLD_INSERT = (
    "INSERT INTO account (phone_index, roles, real_name_level, status, created_at, updated_at) "
    "VALUES ('{}', 'resident', 1, 'active', '2026-01-01', '2026-01-01')"
)

async def main() -> None:
    config = tortoise_config(load_settings())
    await migrate(config=config, target="models.0004_queue_indexes")
    await Tortoise.init(config=config)
    await connections.get("default").execute_script(OLD_INSERT.format("before"))
    await Tortoise.close_connections()
    await migrate(config=config)
    await Tortoise.init(config=config)
    # the previous release, still running during a rolling upgrade, inserts without the new columns
    await connections.get("default").execute_script(OLD_INSERT.format("during"))
    rows = await connections.get("default").execute_query_dict("SELECT version FROM account ORDER BY id")
    print([row["version"] for row in rows])
    await Tortoise.close_connections()

asyncio.run(main())
"""


def test_a_database_with_accounts_upgrades_and_old_inserts_still_work(tmp_path):
    """0005 adds account.version to tables that already hold accounts: a NOT NULL column needs a database
    default (without one SQLite and PostgreSQL both refuse to add it to a table with rows)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.databases import own_database

    with own_database(tmp_path, "ywt_upgrade") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("YWT_")} | {
            "YWT_DATABASE__URL": url,
            "YWT_APP__DATA_DIR": str(tmp_path),
        }
        done = subprocess.run(
            [sys.executable, "-c", UPGRADE],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[1, 1]"
