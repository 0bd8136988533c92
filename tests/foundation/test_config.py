"""Settings: defaults from config.toml, YWT_* overrides, one clear line when a value is wrong."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from api.kit.config import PROJECT_ROOT, ConfigError, load_settings


def test_defaults_are_the_embedded_mode():
    settings = load_settings(environ={})
    assert settings.app.mode == "embedded"
    assert settings.database.url == "sqlite://data/ywt.sqlite3"
    assert settings.redis.url == "memory://"
    assert settings.server.port == 8000
    assert settings.database_url == "sqlite://" + str(PROJECT_ROOT / "data/ywt.sqlite3")


def test_environment_overrides_typed_values():
    settings = load_settings(
        environ={
            "YWT_SERVER__PORT": "9001",
            "YWT_SERVER__TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2",
            "YWT_DATABASE__URL": "postgres://u@db.internal:5432/ywt",
            "YWT_REDIS__URL": "redis://cache:6379/0",
            "YWT_APP__MODE": "production",
        }
    )
    assert settings.server.port == 9001
    assert settings.server.trusted_proxies == ["10.0.0.1", "10.0.0.2"]
    assert settings.app.mode == "production" and not settings.embedded
    assert not settings.memory_redis


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"YWT_DATABASE__URL": "nonsense"}, "YWT_DATABASE__URL"),
        ({"YWT_SERVER__PORT": "eighty"}, "YWT_SERVER__PORT"),
        ({"YWT_SERVER__PORT": "70000"}, "YWT_SERVER__PORT"),
        ({"YWT_APP__MODE": "staging"}, "YWT_APP__MODE"),
        ({"YWT_REDIS__URL": "http://x"}, "YWT_REDIS__URL"),
        ({"YWT_SERVER__COLOUR": "red"}, "YWT_SERVER__COLOUR"),
        ({"YWT_NOPE__X": "1"}, "YWT_NOPE__X"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(env, names):
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    message = str(err.value)
    assert names in message and "\n" not in message


def test_bad_setting_stops_the_start_with_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "YWT_DATABASE__URL": "nonsense", "YWT_APP__DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["configuration error: YWT_DATABASE__URL: must be a sqlite://… or postgres://… URL"]
    assert "Traceback" not in result.stdout + result.stderr


def test_the_sanic_factory_stops_the_same_way():
    env = {**os.environ, "YWT_SERVER__PORT": "abc"}
    code = "from api.app import create_app; create_app()"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT
    )
    assert result.returncode == 2
    assert "YWT_SERVER__PORT" in result.stderr and "Traceback" not in result.stderr
