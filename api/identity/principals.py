"""The identity area's answers to kit: the live account behind a token, and what it may work on.

Each worker keeps the accounts it has seen, with the version they were read at (`models.identity.changed`
bumps it with every write that matters and copies it to Redis after the commit). `require()` hands in the
version it read from Redis in the same round trip as the revocation check: an entry is used only while
its version is that one, so a role taken away, a disabled account or a new binding is seen by every worker
on the very next request. The `/me` answer is kept in the same entry, so it goes with it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from api.kit import metrics
from api.kit.auth import Account, PrincipalSource, Role
from api.kit.scopes import ScopeSource, WorkScope
from api.kit.versions import AccountVersions
from models import identity as db

MAX_ENTRIES = 20_000
# an entry is read again from the database after this long whatever Redis says: the bound on how long a
# change can go unseen if its writer died between its commit and copying the version to Redis
MAX_AGE = 60.0


@dataclass(slots=True)
class Entry:
    snapshot: db.AccountSnapshot
    scope: WorkScope
    read_at: float
    me: bytes | None = field(default=None)


class AccountDirectory(PrincipalSource, ScopeSource):
    """Implements kit's `PrincipalSource` and `ScopeSource` (wired in by the composition root)."""

    def __init__(
        self, versions: AccountVersions, *, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE
    ) -> None:
        self.versions = versions
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[int, Entry] = OrderedDict()

    def forget_local(self) -> None:
        """Drop every cached account (tests empty the tables between them, and ids start again)."""
        self._entries.clear()

    def _current(self, account_id: int, version: int | None) -> Entry | None:
        entry = self._entries.get(account_id)
        if (
            entry is None
            or version is None
            or entry.snapshot.version != version
            or time.monotonic() - entry.read_at > self.max_age
        ):
            return None
        return entry

    async def active_account(self, account_id: int, version: int | None) -> db.AccountSnapshot | None:
        entry = self._current(account_id, version)
        if entry is not None:
            metrics.cache_hit("account")
            return entry.snapshot
        metrics.cache_miss("account")
        entry = await self._read(account_id, version)
        return entry.snapshot if entry is not None else None

    async def _read(self, account_id: int, version: int | None) -> Entry | None:
        snapshot = await db.active_snapshot(account_id)
        if snapshot is None:
            self._entries.pop(account_id, None)
            return None
        if version is None or snapshot.version > version:
            # Redis has no version yet (or an older one: a writer that died before copying its own): what was
            # read is committed, so copying it upwards is safe and lets every worker cache it
            await self.versions.publish(account_id, snapshot.version)
        entry = Entry(snapshot=snapshot, scope=_scope(snapshot), read_at=time.monotonic())
        self._entries[account_id] = entry
        self._entries.move_to_end(account_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    async def work_scope(self, account: Account) -> WorkScope:
        """Admins everything; grid workers their service points; staff their department."""
        if isinstance(account, db.AccountSnapshot):
            entry = self._entries.get(account.id)
            if entry is not None and entry.snapshot is account:
                return entry.scope
            return _scope(account)
        snapshot = await db.active_snapshot(account.id)
        if snapshot is None:
            return WorkScope(account.id, everything=False, point_ids=frozenset(), department_ids=frozenset())
        return _scope(snapshot)

    async def me(self, account: db.AccountSnapshot, build: Callable[[], Awaitable[bytes]]) -> bytes:
        """The `/me` answer of this account at this version: built once, then kept with the entry."""
        entry = self._entries.get(account.id)
        if entry is not None and entry.snapshot is account:
            if entry.me is None:
                metrics.cache_miss("me")
                entry.me = await build()
            else:
                metrics.cache_hit("me")
            return entry.me
        return await build()


def _scope(snapshot: db.AccountSnapshot) -> WorkScope:
    roles = snapshot.role_set
    department_id = snapshot.department_id
    return WorkScope(
        account_id=snapshot.id,
        everything=Role.ADMIN in roles,
        point_ids=snapshot.point_ids if Role.GRID_WORKER in roles else frozenset(),
        department_ids=frozenset({department_id}) if Role.STAFF in roles and department_id else frozenset(),
    )
