"""Every system outside us, chosen per setting: the in-process sandbox or the HTTP client for the real one.

`build_integrations` runs in Sanic's before_server_start (each worker is its own process with its own httpx
clients and event loop), never at import; `Integrations.close` runs at stop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from api.kit.config import ConfigError, Settings
from integrations.elicence import SANDBOX_ISSUERS, HttpLibrary, IssuerKey, LicenceLibrary, SandboxLibrary
from integrations.elicence.base import load_issuers
from integrations.population import HttpPopulation, PopulationDatabase, SandboxPopulation
from integrations.push import HttpPush, PushGateway, SandboxPush
from integrations.sms import HttpSms, SandboxSms, SmsGateway
from integrations.wechat import HttpWeChat, SandboxWeChat, WeChatApi

log = logging.getLogger("ywt.integrations")

__all__ = ["Integrations", "build_integrations"]


@dataclass
class Integrations:
    sms: SmsGateway
    population: PopulationDatabase
    wechat: WeChatApi
    push: PushGateway
    licences: LicenceLibrary
    # the issuers whose signatures on licences we check (configuration's trust list, or the sandbox's)
    licence_issuers: dict[str, IssuerKey]

    async def close(self) -> None:
        """Close the HTTP clients (sandboxes hold none)."""
        for part in (self.sms, self.population, self.wechat, self.push, self.licences):
            await part.aclose()


def _require(value: str, key: str) -> None:
    if not value:
        raise ConfigError(f"configuration error: {key}: required when the provider is http")


def build_integrations(settings: Settings, redis: Redis) -> Integrations:
    """The sandbox or the HTTP client of each system per `settings.<name>.provider`.

    Raises ConfigError (one line naming the key) when an HTTP provider lacks its credentials.
    """
    # every credential checked before the first client is built
    if settings.sms.provider == "http":
        _require(settings.sms.api_key, "sms.api_key")
    if settings.population.provider == "http":
        _require(settings.population.api_key, "population.api_key")
    if settings.wechat.provider == "http":
        _require(settings.wechat.app_secret, "wechat.app_secret")
    if settings.push.provider == "http":
        _require(settings.push.app_key, "push.app_key")
        _require(settings.push.master_secret, "push.master_secret")
    issuers = dict(SANDBOX_ISSUERS)
    if settings.licences.provider == "http":
        _require(settings.licences.api_key, "licences.api_key")
        issuers_file = settings.licences.issuers_file
        try:
            issuers = load_issuers(
                issuers_file if issuers_file.is_absolute() else settings.data_dir / issuers_file
            )
        except ValueError as exc:
            raise ConfigError(f"configuration error: licences.issuers_file: {exc}") from None

    sms: SmsGateway
    if settings.sms.provider == "http":
        sms = HttpSms(settings.sms)
    else:
        sms = SandboxSms(redis, settings.sms.sign_name)

    population: PopulationDatabase
    if settings.population.provider == "http":
        population = HttpPopulation(settings.population)
    else:
        population = SandboxPopulation()

    wechat: WeChatApi
    if settings.wechat.provider == "http":
        wechat = HttpWeChat(settings.wechat, redis)
    else:
        wechat = SandboxWeChat(redis, settings.wechat.app_id)

    push: PushGateway
    if settings.push.provider == "http":
        push = HttpPush(settings.push)
    else:
        push = SandboxPush(redis)

    licences: LicenceLibrary
    if settings.licences.provider == "http":
        licences = HttpLibrary(settings.licences)
    else:
        licences = SandboxLibrary()

    if not settings.embedded:
        for name in ("sms", "population", "wechat", "push", "licences"):
            if getattr(settings, name).provider == "sandbox":
                log.warning("production mode with the %s sandbox: nothing reaches the real system", name)
    return Integrations(
        sms=sms, population=population, wechat=wechat, push=push, licences=licences, licence_issuers=issuers
    )
