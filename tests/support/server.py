"""The real server in a subprocess, started as `make run` starts it: `python -m api.cli serve` in embedded mode
(SQLite and in-memory Redis under a folder of its own) on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from api.kit.config import PROJECT_ROOT


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on (as of now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(folder: Path, **extra: str) -> dict[str, str]:
    """This process's environment with a free port, and the data, database and Redis of an embedded server
    kept under `folder`; `extra` adds or overrides variables."""
    return {
        **os.environ,
        "YWT_SERVER__PORT": str(free_port()),
        "YWT_APP__DATA_DIR": str(folder),
        "YWT_DATABASE__URL": f"sqlite://{folder}/ywt.sqlite3",
        "YWT_REDIS__URL": "memory://",
        **extra,
    }


def _answers(base: str, path: str, timeout: float, proc: subprocess.Popen, deadline: float) -> bool:
    """Whether `path` answers 200 before the deadline, asking again while the server runs."""
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(base + path, timeout=timeout).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


@contextmanager
def started(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """`python -m api.cli serve` with `env`, its output in `log_path`, in a process group of its own: the
    process. When the block ends the whole group (the server and its workers) is sent SIGTERM, then SIGKILL
    if it is still there."""
    with open(log_path, "w+", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # workers that outlived their parent (they share its process group)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def serving(
    env: dict[str, str],
    log_path: Path,
    *,
    ready: Sequence[tuple[str, float]] = (("/healthz", 5),),
    within: float = 150,
) -> Iterator[str]:
    """The server of `env` started, its output in `log_path`: its base URL, once each path of `ready` has
    answered 200 in turn (each request given its timeout), all within `within` seconds; the test fails with
    the end of the log when the server exits or is not ready by then."""
    with started(env, log_path) as proc:
        base = f"http://127.0.0.1:{env['YWT_SERVER__PORT']}"
        deadline = time.monotonic() + within
        if not all(_answers(base, path, timeout, proc, deadline) for path, timeout in ready):
            exited = "exited" if proc.poll() is not None else f"was not ready in {within:g} s"
            pytest.fail(f"server {exited}: " + log_path.read_text(encoding="utf-8")[-3000:])
        yield base
