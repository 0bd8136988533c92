"""Settings as the app would read them, from config.toml with YWT_* overrides, without a process environment."""

from __future__ import annotations

from api.kit.config import Settings, load_settings


def settings_for(**env: str) -> Settings:
    """Settings from config.toml plus YWT_* overrides given as keyword arguments (SMS__PROVIDER="http")."""
    return load_settings(environ={f"YWT_{key}": value for key, value in env.items()})
