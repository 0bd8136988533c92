"""The official-account area's service object, built once per worker by the composition root (api/app.py)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from api.catalog.service import CatalogCache
from api.identity.service import Identity
from api.kit.config import WechatSection
from api.kit.container import Kernel
from integrations.wechat import WeChatApi


@dataclass
class Official:
    kernel: Kernel
    identity: Identity
    catalog: CatalogCache
    wechat: WeChatApi

    @property
    def settings(self) -> WechatSection:
        return self.kernel.settings.wechat

    @property
    def redis(self) -> Redis:
        return self.kernel.redis
