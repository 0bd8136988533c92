"""Which channels each role may sign in on (DESIGN "Users and channels").

| role        | channels          | why                                                                  |
|-------------|-------------------|----------------------------------------------------------------------|
| resident    | app, wechat       | the residents' mobile app and the WeChat official account (H5 pages) |
| grid_worker | handheld, app     | the handheld he carries; the app when the handheld is not at hand    |
| staff       | app               | the back-office screens sign in on `app` (no other value exists)     |
| admin       | app               | the same                                                             |

An account holding several roles may use any channel one of them allows. `handheld` is for grid workers
only: a resident on it is refused (403 `channel_not_allowed`). Checked at every sign-in, after the
credentials (so the answer says nothing about a phone to someone without its code or password), and again
at every refresh, with the account's roles as they are now."""

from __future__ import annotations

from collections.abc import Iterable

from api.kit.auth import Role

ROLE_CHANNELS: dict[Role, frozenset[str]] = {
    Role.RESIDENT: frozenset({"app", "wechat"}),
    Role.GRID_WORKER: frozenset({"handheld", "app"}),
    Role.STAFF: frozenset({"app"}),
    Role.ADMIN: frozenset({"app"}),
}


def allowed_channels(roles: Iterable[str]) -> frozenset[str]:
    """Every channel one of `roles` may sign in on."""
    out: frozenset[str] = frozenset()
    for role in roles:
        if role in ROLE_CHANNELS:
            out |= ROLE_CHANNELS[Role(role)]
    return out


def channel_allowed(roles: Iterable[str], channel: str) -> bool:
    return channel in allowed_channels(roles)
