"""The H5 pages the official account's menu opens: web authorisation (start, callback, the sign-in ticket and
binding with an SMS code of purpose bind), the JS-SDK config; and the CLI that pushes the menu and makes a
point's QR code, against a fake of WeChat's API on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from api.kit.config import PROJECT_ROOT
from models import identity as identity_db
from tests.integrations.fakeserver import FakeServer
from tests.integrations.fakewechat import APP_ID, SECRET, FakeWeChat
from tests.support.people import ZHANG, bearer, request_code, sms_sign_in, wechat_code

START = "/api/v1/wechat/oauth/start"
CALLBACK = "/api/v1/wechat/oauth/callback"
JSSDK = "/api/v1/wechat/jssdk-config"
TOKEN = "/api/v1/auth/token"


async def _start(client: httpx.AsyncClient, next_page: str = "/h5/cases") -> tuple[str, str]:
    """The state WeChat's page gets, and this browser's cookie."""
    r = await client.get(START, params={"next": next_page}, follow_redirects=False)
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    assert (
        f"{location.scheme}://{location.netloc}{location.path}"
        == "https://open.weixin.qq.com/connect/oauth2/authorize"
    )
    assert location.fragment == "wechat_redirect"
    query = parse_qs(location.query)
    assert query["scope"] == ["snsapi_base"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["https://ywt.xinyu.gov.cn/api/v1/wechat/oauth/callback"]
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    return query["state"][0], r.cookies["ywt_wx_oauth"]


async def _return(client, code: str, state: str, cookie: str | None) -> httpx.Response:
    cookies = {"ywt_wx_oauth": cookie} if cookie else {}
    return await client.get(
        CALLBACK, params={"code": code, "state": state}, cookies=cookies, follow_redirects=False
    )


def _fragment(r: httpx.Response) -> tuple[str, dict[str, str]]:
    assert r.status_code == 302, r.text
    where = urlsplit(r.headers["location"])
    assert "ticket" not in where.query  # tickets never in the query (servers' logs)
    return where.path, {k: v[0] for k, v in parse_qs(where.fragment).items()}


async def test_a_bound_wechat_signs_in_through_the_web_authorisation_with_a_one_time_ticket(client):
    app_tokens = await sms_sign_in(client, ZHANG["phone"])
    code, openid = await wechat_code(client)
    await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=bearer(app_tokens))
    state, cookie = await _start(client, "/h5/cases")
    code, _ = await wechat_code(client, openid)
    path, fragment = _fragment(await _return(client, code, state, cookie))
    assert path == "/h5/cases" and int(fragment["expires_in"]) == 60
    grant = {"grant_type": "wechat_ticket", "ticket": fragment["signin_ticket"], "channel": "wechat"}
    r = await client.post(TOKEN, json=grant)
    assert r.status_code == 200, r.text
    assert r.json()["account"]["id"] == app_tokens["account"]["id"]
    again = await client.post(TOKEN, json=grant)  # used once
    assert again.status_code == 401 and again.json()["code"] == "invalid_grant"


async def test_an_unbound_wechat_is_bound_with_an_sms_code_of_purpose_bind(client):
    state, cookie = await _start(client, "/h5/bind")
    code, openid = await wechat_code(client)
    path, fragment = _fragment(await _return(client, code, state, cookie))
    assert path == "/h5/bind" and "binding_ticket" in fragment
    sms = await request_code(client, ZHANG["phone"], purpose="bind")
    r = await client.post(
        TOKEN,
        json={
            "grant_type": "sms_code",
            "phone": ZHANG["phone"],
            "code": sms,
            "channel": "wechat",
            "binding_ticket": fragment["binding_ticket"],
        },
    )
    assert r.status_code == 200, r.text
    binding = await identity_db.binding_of("wechat", openid)
    assert binding is not None and binding.account_id == r.json()["account"]["id"]
    # the bind code is gone: it cannot sign in a second time
    r = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": ZHANG["phone"], "code": sms, "channel": "app"}
    )
    assert r.status_code == 401


async def test_a_bind_code_without_a_binding_ticket_signs_nobody_in(client):
    sms = await request_code(client, ZHANG["phone"], purpose="bind")
    r = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": ZHANG["phone"], "code": sms, "channel": "app"}
    )
    assert r.status_code == 401 and r.json()["code"] == "invalid_grant"


async def test_a_state_forged_stale_or_from_another_browser_is_403(client, app, monkeypatch):
    state, cookie = await _start(client)
    code, _ = await wechat_code(client)
    other_state, other_cookie = await _start(client)
    for bad_state, bad_cookie in (
        (state, None),  # no cookie: not the browser that started
        (state, other_cookie),  # another browser's cookie
        (state[:-2] + ("aa" if state[-2:] != "aa" else "bb"), cookie),  # signature changed
        ("e30." + state.split(".")[1], cookie),  # payload changed
    ):
        r = await _return(client, code, bad_state, bad_cookie)
        assert r.status_code == 403 and r.json()["code"] == "wechat_state_invalid", (bad_state, r.text)
    import time as real_time

    later = real_time.time() + 601
    monkeypatch.setattr("api.wechat.service.time.time", lambda: later)
    r = await _return(client, code, other_state, other_cookie)
    assert r.status_code == 403 and r.json()["code"] == "wechat_state_invalid"


@pytest.mark.parametrize(
    "next_page",
    [
        "https://evil.example.com/h5",
        "//evil.example.com/x",
        "javascript:alert(1)",
        "https://ywt.xinyu.gov.cn.evil.com/",
        "https://user@ywt.xinyu.gov.cn/",
    ],
)
async def test_next_outside_our_pages_is_422_and_redirects_nowhere(client, next_page):
    r = await client.get(START, params={"next": next_page}, follow_redirects=False)
    assert r.status_code == 422 and r.json()["code"] == "wechat_page_not_allowed"
    assert r.json()["errors"][0]["field"] == "next" and "location" not in r.headers


async def test_a_full_url_on_our_domain_is_a_fine_next(client):
    state, cookie = await _start(client, "https://ywt.xinyu.gov.cn/h5/cases?tab=open")
    code, _ = await wechat_code(client)
    r = await _return(client, code, state, cookie)
    assert r.headers["location"].startswith("https://ywt.xinyu.gov.cn/h5/cases?tab=open#binding_ticket=")


async def test_the_jssdk_config_is_wechats_signature_over_the_url_without_its_fragment(client, app):
    page = "https://ywt.xinyu.gov.cn/h5/points?district=360502"
    r = await client.get(JSSDK, params={"url": page + "#top"})
    assert r.status_code == 200, r.text
    config = r.json()
    assert set(config) == {"appId", "timestamp", "nonceStr", "signature"}
    assert config["appId"] == app.ctx.settings.wechat.app_id
    ticket = await app.ctx.services.integrations.wechat.jsapi_ticket()
    plain = f"jsapi_ticket={ticket}&noncestr={config['nonceStr']}&timestamp={config['timestamp']}&url={page}"
    assert config["signature"] == hashlib.sha1(plain.encode()).hexdigest()


@pytest.mark.parametrize("url", ["https://evil.example.com/h5", "/h5/cases", "ftp://ywt.xinyu.gov.cn/x"])
async def test_the_jssdk_config_is_only_for_our_pages(client, url):
    r = await client.get(JSSDK, params={"url": url})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url"


# ---- the CLI: menu and QR codes against a fake WeChat ---------------------------------------------------


@pytest.fixture
def wechat_api():
    server = FakeServer().start()
    try:
        yield FakeWeChat(server), server
    finally:
        server.stop()


def _cli(settings, server: FakeServer, *args: str, config_file=None) -> subprocess.CompletedProcess:
    env = {
        **({"YWT_CONFIG_FILE": str(config_file)} if config_file else {}),
        **{k: v for k, v in os.environ.items() if not k.startswith("YWT_")},
        "YWT_DATABASE__URL": settings.database.url,
        "YWT_REDIS__URL": "memory://",
        "YWT_APP__DATA_DIR": str(settings.app.data_dir),
        "YWT_WECHAT__PROVIDER": "http",
        "YWT_WECHAT__BASE_URL": server.url,
        "YWT_WECHAT__APP_ID": APP_ID,
        "YWT_WECHAT__APP_SECRET": SECRET,
        "NO_PROXY": "127.0.0.1",
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )


async def test_wechat_menu_push_sends_the_menu_of_config_toml(client, settings, wechat_api):
    wx, server = wechat_api
    done = _cli(settings, server, "wechat-menu", "push")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "menu pushed: 3 buttons, 8 sub-buttons"
    assert wx.menu == settings.wechat.menu.as_wechat()
    assert [b["name"] for b in wx.menu["button"]] == ["我的办件", "办事服务", "便民服务"]
    assert SECRET not in done.stdout + done.stderr


async def test_a_menu_over_wechats_limits_stops_before_anything_is_sent(
    client, settings, wechat_api, tmp_path
):
    wx, server = wechat_api
    config = (PROJECT_ROOT / "config.toml").read_text(encoding="utf-8")
    bad = tmp_path / "config.toml"
    bad.write_text(
        config.replace('name = "我的办件"', 'name = "我的全部办件进度"', 1), encoding="utf-8"
    )  # 24 bytes
    done = _cli(settings, server, "wechat-menu", "push", config_file=bad)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "at most 16 bytes" in done.stderr and wx.menu is None


async def test_wechat_qr_makes_a_permanent_code_for_a_known_point(client, catalog, settings, wechat_api):
    wx, server = wechat_api
    done = _cli(settings, server, "wechat-qr", "P360502001001")
    assert done.returncode == 0, done.stderr
    [ticket] = wx.qr
    assert wx.qr[ticket] == "P360502001001"
    assert f"ticket: {ticket}" in done.stdout
    assert "image:  https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" in done.stdout
    unknown = _cli(settings, server, "wechat-qr", "NO-SUCH-POINT")
    assert unknown.returncode == 1 and "no service point" in unknown.stderr and len(wx.qr) == 1
