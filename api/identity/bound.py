"""Which account an external id (a WeChat openid) is bound to, remembered by the worker between messages.

The official account asks this for most messages it answers (`wechat_account_of`), one SELECT each; a
follower writes several in a row. The worker keeps each answer and uses it again only when Redis confirms it
is still true, in the round trip the callback makes anyway for the message's de-duplication:

- "bound to account A" was read with A's version (`accounts.version`); binding and unbinding both bump that
  version (`models.identity.changed`), so the copy is used while Redis holds that same version of A;
- "bound to nobody" was read under the generation `bindings:{channel}` that Redis held *before* the
  SELECT; every new binding bumps it after its commit (`models.identity.add_binding`), so the copy is used
  while Redis holds that same generation.

A missing version or generation in Redis (never written, Redis restarted) confirms nothing. A process that
dies between its commit and the bump leaves a stale copy for at most `MAX_AGE` seconds, as the account cache
does (`api/kit/versions.py`). Outside a confirmed callback (the workers' deferred replies) the database is
asked every time."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

from api.kit.versions import GENERATION_KEY, VERSION_KEY
from models import identity as db

MAX_AGE = 60.0  # seconds a copy is used at most, whatever Redis says
SIZE = 20_000  # copies kept per worker (about 3 MB); the oldest goes first


@dataclass(frozen=True, slots=True)
class _Copy:
    account_id: int | None
    version: int  # the account's, when bound
    generation: bytes  # the bindings' generation, when bound to nobody
    read_at: float


@dataclass(frozen=True, slots=True)
class Checked:
    """What Redis said of one external id's copy, for the rest of the message's handling."""

    channel: str
    external_id: str
    hit: bool
    account_id: int | None
    generation: bytes | None  # Redis's generation, read before any SELECT of this message


_checked: ContextVar[Checked | None] = ContextVar("ywt_bound_checked", default=None)


class BoundAccounts:
    def __init__(self, channel: str = "wechat") -> None:
        self.channel = channel
        self.generation_key = GENERATION_KEY.format(db.binding_generation(channel))
        self._copies: dict[str, _Copy] = {}

    def keys(self, external_id: str) -> tuple[str, str | None]:
        """The Redis keys that confirm this id's copy: the bindings' generation, and the bound account's
        version (None: no copy of a bound account)."""
        copy = self._copies.get(external_id)
        if copy is None or copy.account_id is None:
            return self.generation_key, None
        return self.generation_key, VERSION_KEY.format(copy.account_id)

    def confirm(self, external_id: str, generation: bytes | None, version: bytes | None) -> None:
        """Redis's values of `keys(external_id)`: kept for this task (this message's answer)."""
        copy = self._copies.get(external_id)
        hit = False
        if copy is not None and time.monotonic() - copy.read_at <= MAX_AGE:
            if copy.account_id is None:
                hit = generation is not None and generation == copy.generation
            else:
                hit = version is not None and int(version) == copy.version
        _checked.set(
            Checked(self.channel, external_id, hit, copy.account_id if hit and copy else None, generation)
        )

    async def account_of(self, external_id: str) -> int | None:
        checked = _checked.get()
        if checked is None or checked.external_id != external_id or checked.channel != self.channel:
            found = await db.account_of_binding(self.channel, external_id)
            return found[0] if found else None
        if checked.hit:
            return checked.account_id
        found = await db.account_of_binding(self.channel, external_id)
        if found is not None:
            self._keep(external_id, _Copy(found[0], found[1], b"", time.monotonic()))
        elif checked.generation is not None:
            self._keep(external_id, _Copy(None, 0, checked.generation, time.monotonic()))
        _checked.set(
            Checked(self.channel, external_id, True, found[0] if found else None, checked.generation)
        )
        return found[0] if found else None

    def _keep(self, external_id: str, copy: _Copy) -> None:
        copies = self._copies
        copies.pop(external_id, None)
        copies[external_id] = copy
        while len(copies) > SIZE:
            del copies[next(iter(copies))]
