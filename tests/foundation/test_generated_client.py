"""A client generated from /docs/openapi.json by openapi-python-client compiles and reads the catalogue
(the README's "Generating a client" runs the same two steps)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import orjson

PACKAGE = "ywt_client"


def _generate(spec: bytes, where: Path) -> None:
    (where / "openapi.json").write_bytes(spec)
    (where / "config.yaml").write_text("post_hooks: []\n")  # no formatter needed to compile
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json",
         "--meta", "none", "--output-path", PACKAGE, "--config", "config.yaml"],
        cwd=where, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (where / PACKAGE / "api" / "catalogue" / "list_items.py").exists(), done.stdout


async def test_a_generated_client_lists_the_catalogue(client, catalog, tmp_path, monkeypatch):
    spec = await client.get("/docs/openapi.json")
    _generate(spec.content, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        monkeypatch.delitem(sys.modules, name)
    generated = importlib.import_module(PACKAGE)
    list_items = importlib.import_module(f"{PACKAGE}.api.catalogue.list_items")
    get_item = importlib.import_module(f"{PACKAGE}.api.catalogue.get_item")
    models = importlib.import_module(f"{PACKAGE}.models")

    api = generated.Client(base_url=str(client.base_url)).set_async_httpx_client(client)
    page = await list_items.asyncio(client=api, limit=2)
    assert isinstance(page, models.ItemList), page
    assert len(page.items) == 2 and page.next_cursor
    rest = await list_items.asyncio(client=api, cursor=page.next_cursor, limit=50)
    codes = [i.code for i in page.items + rest.items]
    direct = orjson.loads((await client.get("/api/v1/items", params={"limit": 50})).content)
    assert codes == [i["code"] for i in direct["items"]]
    first = page.items[0]
    assert isinstance(first.department, models.DepartmentOut) and first.kind.value in (
        "same_day",
        "committed",
    )
    guide = await get_item.asyncio(client=api, code=first.code)
    assert isinstance(guide, models.ItemGuide) and guide.code == first.code and guide.materials
    same_day = await list_items.asyncio(client=api, kind=models.ListItemsKind.SAME_DAY, limit=50)
    assert same_day.items and {i.kind.value for i in same_day.items} == {"same_day"}
    missing = await get_item.asyncio_detailed(client=api, code="NO-SUCH-ITEM")
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Problem)
    assert missing.parsed.code == "item_not_found"
