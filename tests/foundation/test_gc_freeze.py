"""Once a worker is up, what start-up made is out of the garbage collector's reach (gc.freeze): a full
collection under load then walks only what requests made since (see api/app.py freeze_start_up_objects)."""

from __future__ import annotations

import gc

import httpx


async def test_the_started_app_has_frozen_its_start_up_objects(client: httpx.AsyncClient):
    assert gc.get_freeze_count() > 0
