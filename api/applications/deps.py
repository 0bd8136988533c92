"""The applications area's service object: the kernel it stands on and the store of uploaded files.

What it reads of the kernel (settings, the personal-data cipher, the working-day calendar, the rate limiter)
is shared by every area; of the catalogue it holds the worker's cache (the same object the catalogue's
handlers use), which a submission reads its item and point from."""

from __future__ import annotations

from dataclasses import dataclass

from api.applications.files import FileStore
from api.catalog.service import CatalogCache
from api.kit.config import Settings
from api.kit.container import Kernel
from api.kit.pii import PiiCipher
from api.kit.ratelimit import RateLimiter
from api.kit.workdays import WorkCalendar
from api.licences.service import Licences


@dataclass
class Cases:
    kernel: Kernel
    files: FileStore
    catalog: CatalogCache
    licences: Licences

    @property
    def settings(self) -> Settings:
        return self.kernel.settings

    @property
    def cipher(self) -> PiiCipher:
        return self.kernel.cipher

    @property
    def calendar(self) -> WorkCalendar:
        return self.kernel.calendar

    @property
    def limiter(self) -> RateLimiter:
        return self.kernel.limiter
