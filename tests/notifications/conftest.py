from __future__ import annotations

import pytest

from tests.factories import load_catalog


@pytest.fixture
async def catalog(client):
    await load_catalog()
