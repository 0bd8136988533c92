"""Every curl example of README.md works as printed: each `sh` block that calls curl is run by bash, in order
and with the shell variables it sets, against a real embedded server (`127.0.0.1:8000` replaced by the test
server's address); every curl call must answer 2xx, with JSON when it has a body."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.kit.config import PROJECT_ROOT
from tests.support.server import server_env, serving

README = PROJECT_ROOT / "README.md"
PRINTED = "127.0.0.1:8000"

# every curl call of a block goes through this function: the real curl, its body on stdout as printed, and
# its status and content type written to $CURL_LOG, one line per call
RECORDING_CURL = r"""
curl() {
    local body
    body=$(mktemp)
    local seen
    seen=$(command curl -o "$body" -w '%{http_code} %{content_type}' "$@")
    printf '%s %s\n' "$seen" "${*: -1}" >> "$CURL_LOG"
    cat "$body"
    rm -f "$body"
}
"""


def curl_blocks() -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    return [block for block in blocks if re.search(r"^\s*[A-Z_]*=?\$?\(?curl |\bcurl -", block, re.MULTILINE)]


def test_the_readme_has_curl_examples():
    blocks = curl_blocks()
    assert len(blocks) >= 2
    assert any("items?q=身份证" in block for block in blocks)
    assert any("$B/auth/token" in block for block in blocks)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("readme")
    env = server_env(folder)
    with serving(env, folder / "server.log") as base:
        yield base


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash"
)
@pytest.mark.parametrize("index", range(len(curl_blocks())))
def test_each_curl_example_answers_2xx(server, tmp_path: Path, index: int):
    block = curl_blocks()[index]
    address = server.removeprefix("http://")
    script = block.replace(PRINTED, address)
    log = tmp_path / "curl.log"
    log.touch()
    run = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", RECORDING_CURL + script],
        env={**os.environ, "CURL_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, f"block {index} failed:\n{block}\nstdout: {run.stdout}\nstderr: {run.stderr}"
    calls = [line.split(" ", 2) for line in log.read_text(encoding="utf-8").splitlines()]
    printed = len(re.findall(r"\bcurl ", block))
    assert len(calls) == printed, (calls, block)
    for status, content_type, url in calls:
        assert status.startswith("2"), f"{url} answered {status}:\n{run.stdout}"
        if status != "204":
            assert content_type.startswith("application/json"), (url, content_type)
