"""The one key-file writer (api.kit.keyfile) and the two keyrings on it: atomic, exclusive on create, 0o600,
and safe when many workers start at once on a fresh data dir."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from api.kit import keyfile
from api.kit.config import PROJECT_ROOT
from api.kit.keyfile import read_or_create, write_private
from api.kit.keys import JWT_FILE, load_signing_keys, retire_signing_key, rotate_signing_key
from api.kit.pii import add_key, create_keyring, ensure_keyring, remove_key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def open_umask():
    """A umask that would leave new files world-readable: the writer must not depend on the caller's."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_exclusive_create_refuses_to_overwrite(tmp_path):
    path = tmp_path / "ring.json"
    write_private(path, b"first", replace=False)
    with pytest.raises(FileExistsError):
        write_private(path, b"second", replace=False)
    assert path.read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


def test_replace_overwrites_and_creates(tmp_path):
    path = tmp_path / "ring.json"
    write_private(path, b"one", replace=True)
    write_private(path, b"two", replace=True)
    assert path.read_bytes() == b"two"
    assert _leftovers(tmp_path) == []


def test_files_and_new_folders_are_private_whatever_the_umask(tmp_path, open_umask):
    path = tmp_path / "keys" / "ring.json"
    write_private(path, b"x", replace=False)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    write_private(path, b"y", replace=True)
    assert _mode(path) == 0o600

    load_signing_keys(tmp_path / "jwt", create=True)
    assert _mode(tmp_path / "jwt" / JWT_FILE) == 0o600
    rotate_signing_key(tmp_path / "jwt")
    assert _mode(tmp_path / "jwt" / JWT_FILE) == 0o600
    ensure_keyring(tmp_path / "pii" / "pii.json")
    assert _mode(tmp_path / "pii" / "pii.json") == 0o600
    add_key(tmp_path / "pii" / "pii.json")
    assert _mode(tmp_path / "pii" / "pii.json") == 0o600


def test_read_or_create_reads_an_existing_file_without_making_one(tmp_path):
    path = tmp_path / "ring.json"
    path.write_bytes(b"given")

    def make() -> bytes:
        raise AssertionError("must not generate a key when the file exists")

    assert read_or_create(path, make) == b"given"


def test_read_or_create_keeps_the_winner_when_another_process_creates_it_first(tmp_path):
    """The race on a fresh data dir, made deterministic: another worker's file appears while we generate."""
    path = tmp_path / "ring.json"

    def make() -> bytes:
        write_private(path, b"the other worker's", replace=False)
        return b"ours"

    assert read_or_create(path, make) == b"the other worker's"
    assert path.read_bytes() == b"the other worker's"
    assert _leftovers(tmp_path) == []


def test_many_threads_starting_at_once_all_load_the_same_signing_key(tmp_path):
    n = 16
    barrier = threading.Barrier(n)

    def start(_: int) -> tuple[str, frozenset[str]]:
        barrier.wait()
        keys = load_signing_keys(tmp_path, create=True)
        return keys.current, frozenset(keys.private)

    with ThreadPoolExecutor(n) as pool:
        seen = set(pool.map(start, range(n)))
    assert len(seen) == 1
    current, kids = seen.pop()
    assert kids == {current}
    assert load_signing_keys(tmp_path, create=False).current == current
    assert _leftovers(tmp_path) == []


def test_many_threads_starting_at_once_all_load_the_same_pii_keyring(tmp_path):
    n = 16
    barrier = threading.Barrier(n)
    path = tmp_path / "pii.json"

    def start(_: int) -> tuple:
        barrier.wait()
        keys, current, blind = ensure_keyring(path)
        return tuple(sorted(keys.items())), current, blind

    with ThreadPoolExecutor(n) as pool:
        seen = set(pool.map(start, range(n)))
    assert len(seen) == 1


STARTER = """
import sys, time
from pathlib import Path
from api.kit.keys import load_signing_keys
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
print(load_signing_keys(Path(sys.argv[1]), create=True).current)
"""


def test_many_processes_starting_at_once_all_load_the_same_signing_key(tmp_path):
    """Like Sanic workers: separate processes, released together once all of them have imported the code."""
    keys_dir, go = tmp_path / "keys", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(keys_dir), str(go)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        time.sleep(1.5)  # let them import and start polling
        go.touch()
        outs = [p.communicate(timeout=30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs), [err for _, err in outs]
    kids = {out.strip() for out, _ in outs}
    assert kids == {load_signing_keys(keys_dir, create=False).current}
    assert _leftovers(keys_dir) == []


def test_a_crash_leftover_temp_file_does_not_break_the_next_start(tmp_path):
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    # what a crash half-way through a write leaves: this writer's temp name, and the old writer's fixed one
    (keys_dir / f".{JWT_FILE}.crashed.tmp").write_text('{"current": "k1", "ke')
    (keys_dir / "jwt.tmp").write_text('{"current": "k1", "ke')
    (keys_dir / ".pii.json.crashed.tmp").write_text("{")

    first = load_signing_keys(keys_dir, create=True)
    assert load_signing_keys(keys_dir, create=True).current == first.current
    keys, current, _ = ensure_keyring(keys_dir / "pii.json")
    assert current == "k1" and set(keys) == {"k1"}


def test_a_stale_temp_file_is_removed_by_the_next_write_and_a_fresh_one_left_alone(tmp_path):
    stale, fresh = tmp_path / f".{JWT_FILE}.stale.tmp", tmp_path / f".{JWT_FILE}.live.tmp"
    stale.write_text("{")
    fresh.write_text("{")
    long_ago = time.time() - keyfile.STALE_TEMP_SECONDS - 60
    os.utime(stale, (long_ago, long_ago))
    other = tmp_path / ".pii.json.stale.tmp"  # another file's temp: not this write's business
    other.write_text("{")
    os.utime(other, (long_ago, long_ago))

    load_signing_keys(tmp_path, create=True)
    assert not stale.exists()
    assert fresh.exists() and other.exists()


def test_rotation_and_retirement_rewrite_the_ring_in_place(tmp_path):
    first = load_signing_keys(tmp_path, create=True).current
    new = rotate_signing_key(tmp_path)
    assert set(load_signing_keys(tmp_path, create=False).private) == {first, new}
    retire_signing_key(tmp_path, first)
    ring = load_signing_keys(tmp_path, create=False)
    assert (ring.current, set(ring.private)) == (new, {new})
    assert _leftovers(tmp_path) == []


def test_rotation_on_a_missing_ring_creates_it_but_never_over_one_that_appeared(tmp_path, monkeypatch):
    kid = rotate_signing_key(tmp_path / "fresh")
    assert load_signing_keys(tmp_path / "fresh", create=False).current == kid

    # a worker's first start writes the ring between rotation's look and its write
    real = keyfile.write_private
    theirs = load_signing_keys(tmp_path / "raced", create=True).current
    (tmp_path / "raced" / JWT_FILE).rename(tmp_path / "held")

    def write(path: Path, data: bytes, *, replace: bool) -> None:
        (tmp_path / "held").rename(path)
        real(path, data, replace=replace)

    monkeypatch.setattr("api.kit.keys.write_private", write)
    with pytest.raises(FileExistsError):
        rotate_signing_key(tmp_path / "raced")
    assert load_signing_keys(tmp_path / "raced", create=False).current == theirs


def test_pii_rotation_and_removal_keep_the_file_private_and_whole(tmp_path):
    path = tmp_path / "pii.json"
    create_keyring(path)
    with pytest.raises(FileExistsError):
        create_keyring(path)
    assert add_key(path) == "k2"
    remove_key(path, "k1")
    keys, current, _ = ensure_keyring(path)
    assert (set(keys), current) == ({"k2"}, "k2")
    assert _mode(path) == 0o600
    assert _leftovers(tmp_path) == []
