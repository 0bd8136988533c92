"""`/docs` works with no network: the Swagger UI page names only this server, and its assets answer."""

from __future__ import annotations

import re


async def test_docs_page_references_only_our_own_host_and_its_assets_answer(client):
    r = await client.get("/docs")
    assert r.status_code == 200 and "html" in r.headers["content-type"]
    page = r.text
    links = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r'(?:url|configUrl): "([^"]+)"', page)
    assert links, page
    assert not re.search(r"https?://|//[a-z]", page.replace("http://www.w3.org", "")), "an outside URL"
    for link in links:
        assert link.startswith("/docs/"), link
        asset = await client.get(link)
        assert asset.status_code == 200, link
    kinds = {
        (await client.get(link)).headers["content-type"].split(";")[0] for link in links if "assets" in link
    }
    assert {"text/css", "text/javascript"} <= kinds or {"text/css", "application/javascript"} <= kinds, kinds


async def test_the_oauth2_redirect_page_is_served_from_the_bundle_not_a_cdn(client, monkeypatch):
    import urllib.request

    def no_network(*_args, **_kwargs):
        raise AssertionError("the docs reached out to the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    r = await client.get("/docs/oauth2-redirect.html")
    assert r.status_code == 200 and "oauth2" in r.text.lower()
