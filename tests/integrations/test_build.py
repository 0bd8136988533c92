"""build_integrations: sandbox or HTTP per setting, credentials required, clients closed."""

from __future__ import annotations

import pytest
from fakeredis import FakeAsyncRedis

from api.kit.config import ConfigError
from integrations import build_integrations
from integrations.population import HttpPopulation, SandboxPopulation
from integrations.sms import HttpSms, SandboxSms
from integrations.wechat import HttpWeChat, SandboxWeChat
from tests.support.settings import settings_for


async def test_defaults_are_sandboxes(redis: FakeAsyncRedis) -> None:
    integrations = build_integrations(settings_for(), redis)
    assert isinstance(integrations.sms, SandboxSms)
    assert isinstance(integrations.population, SandboxPopulation)
    assert isinstance(integrations.wechat, SandboxWeChat)
    await integrations.sms.send("13800000001", "login_code", {"code": "123456"})
    assert (await integrations.sms.sent_to("13800000001"))[0]["text"].startswith("【新余一网通】")
    await integrations.close()


async def test_http_providers_and_close(redis: FakeAsyncRedis) -> None:
    settings = settings_for(
        SMS__PROVIDER="http",
        SMS__BASE_URL="https://sms.example",
        SMS__API_KEY="k",
        POPULATION__PROVIDER="http",
        POPULATION__BASE_URL="https://rk.example",
        POPULATION__API_KEY="k",
        WECHAT__PROVIDER="http",
        WECHAT__APP_ID="wx1",
        WECHAT__APP_SECRET="s",
    )
    integrations = build_integrations(settings, redis)
    assert isinstance(integrations.sms, HttpSms)
    assert isinstance(integrations.population, HttpPopulation)
    assert isinstance(integrations.wechat, HttpWeChat)
    clients = [integrations.sms._client, integrations.population._client, integrations.wechat._client]
    assert [str(c.base_url) for c in clients] == [
        "https://sms.example",
        "https://rk.example",
        "https://api.weixin.qq.com",
    ]
    assert not any(c.is_closed for c in clients)
    await integrations.close()
    assert all(c.is_closed for c in clients)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SMS__PROVIDER": "http", "SMS__BASE_URL": "https://sms.example"}, "sms.api_key"),
        (
            {"POPULATION__PROVIDER": "http", "POPULATION__BASE_URL": "https://rk.example"},
            "population.api_key",
        ),
        ({"WECHAT__PROVIDER": "http"}, "wechat.app_secret"),
    ],
)
async def test_http_provider_needs_its_credential(
    redis: FakeAsyncRedis, env: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        build_integrations(settings_for(**env), redis)
