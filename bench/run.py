"""Benchmark: wrk against the real service and against a bare Sanic app, in one run.

.venv/bin/python bench/run.py [--duration 10] [--database-url URL] [--redis-url URL] [--workers N]

Starts `python -m api.cli serve` (fresh temp data dir and SQLite file unless --database-url is given) and
bench/bare_app.py on free 127.0.0.1 ports, warms each scenario up for 2 s, measures it with
`wrk -t2 -c64 -d<duration>s --latency`, reads the resident memory of the service, prints a table and writes
bench/results/latest.json. It reports; it does not assert: exit 0 even when a goal is missed, non-zero only
when something could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
HOST = "127.0.0.1"  # the only host this script ever sends requests to

THREADS = 2
CONNECTIONS = 64
WARMUP_SECONDS = 2
START_TIMEOUT = 90.0  # seconds for the service to answer /readyz and list an item
RSS_GOAL_MB = 150.0


class BenchError(Exception):
    """Something could not run; the message says what."""


# ---------------------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What a scenario's setup hook hands back: extra request headers and values for {placeholders}."""

    headers: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


# A setup hook receives the target's base URL (http://127.0.0.1:PORT) and returns Prepared, e.g. signs in
# and returns {"Authorization": "Bearer …"}. It runs once, after the service is ready, before the warm-up.
SetupHook = Callable[[str], Prepared]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str  # may hold {placeholders}: {code} (an item code found at start) and any setup hook values
    target: str = "service"  # "service" or "bare"
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (wrk -H)
    script: str | None = None  # a wrk Lua script, relative to bench/ (POST bodies, per-request headers)
    script_args: tuple[str, ...] = ()  # passed to the script's init(args); {placeholders} are filled in
    setup: SetupHook | None = None
    goal_ratio: float | None = None  # req/s at least this × the bare app's req/s
    goal_p99_ms: float | None = None  # 99th percentile latency at most this

    def goal_text(self) -> str:
        parts = []
        if self.goal_ratio is not None:
            parts.append(f">={self.goal_ratio:g}x bare")
        if self.goal_p99_ms is not None:
            parts.append(f"p99<={self.goal_p99_ms:g}ms")
        return ", ".join(parts) or "-"


SCENARIOS: list[Scenario] = [
    Scenario("bare", "/", target="bare"),
    Scenario("item", "/api/v1/items/{code}", goal_ratio=0.5, goal_p99_ms=50),
    Scenario("points_near", "/api/v1/points?near=27.8175,114.9170", goal_p99_ms=50),
    # Later, for example:
    #   Scenario("me", "/api/v1/me", setup=sign_in_demo_user, goal_p99_ms=50)
    #   Scenario("apply", "/api/v1/...", script="post_idempotent.lua", setup=sign_in_demo_user)
]


# ---------------------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing the Debian package (apt-get update -qq && apt-get install -y -qq wrk)")
    if shutil.which("apt-get") is None:
        raise BenchError("wrk is not installed and apt-get is not available: install wrk and run again")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        print("  $ " + " ".join(cmd), flush=True)
        try:
            done = subprocess.run(cmd, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(
                f"could not install wrk ({' '.join(cmd)}: {exc}); install it and run again"
            ) from None
        if done.returncode != 0:
            raise BenchError(
                f"could not install wrk ({' '.join(cmd)} exited {done.returncode}; root needed?): "
                "install it (apt-get install wrk) and run again"
            )
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get reported success but wrk is still not on PATH")
    return found


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


@dataclass
class WrkResult:
    requests_per_sec: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int | None
    non_2xx: int  # wrk's "Non-2xx or 3xx responses" (status >= 400)
    socket_errors: dict[str, int]

    @property
    def flagged(self) -> bool:
        return self.non_2xx > 0 or any(self.socket_errors.values())


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not rps:
        raise BenchError("could not find Requests/sec in wrk's output:\n" + output)
    percentiles = {
        int(p): to_ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    }
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {}
    )
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        p50_ms=percentiles.get(50),
        p99_ms=percentiles.get(99),
        requests=int(total.group(1)) if total else None,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors,
    )


def wrk_command(
    wrk: str, url: str, seconds: int, headers: dict[str, str], script: Path | None, args: list[str]
):
    cmd = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if args:
        cmd += ["--", *args]
    return cmd


def run_wrk(cmd: list[str], seconds: int) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 30} s: {' '.join(cmd)}") from None
    if done.returncode != 0:
        raise BenchError(
            f"wrk exited {done.returncode}: {' '.join(cmd)}\n{done.stdout}{done.stderr}".rstrip()
        )
    return done.stdout


# ---------------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """A subprocess in its own process group, output to a log file, stopped with TERM then KILL."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.ready = False  # set once it has answered; decides how it is stopped
        self._log_file = log.open("wb")
        print(f"starting {name}: {' '.join(cmd)}", flush=True)
        self.proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """TERM (a ready server shuts down cleanly), then KILL whatever is left of its process group.

        A server that never became ready gets KILL straight away: Sanic may lose a TERM sent mid-start.
        """
        try:
            if self.ready and self.proc.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    print(f"{self.name} did not stop within 5 s of SIGTERM: killing it", file=sys.stderr)
            # whatever is left of its group (workers), and the leader if it ignored TERM
            self._signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"{self.name} (pid {self.pid}) did not die after SIGKILL", file=sys.stderr)
        finally:
            self._log_file.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group we created with start_new_session
        except (ProcessLookupError, PermissionError):
            pass


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    if urllib.parse.urlsplit(url).hostname != HOST:
        raise BenchError(f"refusing a non-local target: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 — http://127.0.0.1 only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(server: Server, deadline: float, probe: Callable[[], object | None], what: str) -> object:
    """Call probe until it returns something other than None; fail if the process dies or time runs out."""
    last_error = ""
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(
                f"{server.name} exited with code {server.proc.returncode} while waiting for {what}; "
                f"its output:\n{server.log_tail()}"
            )
        try:
            found = probe()
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if found is not None:
                return found
        time.sleep(0.25)
    raise BenchError(
        f"{server.name}: no {what} within {START_TIMEOUT:g} s"
        + (f" (last error: {last_error})" if last_error else "")
        + f"; its output:\n{server.log_tail()}"
    )


def wait_for_service(server: Server, base: str) -> str:
    """Wait for /readyz 200, then for an item in the list; return that item's code."""
    deadline = time.monotonic() + START_TIMEOUT
    wait_until(
        server, deadline, lambda: True if http_get(base + "/readyz")[0] == 200 else None, "200 from /readyz"
    )
    server.ready = True  # up: from now on it is stopped with TERM first

    def first_item() -> str | None:
        status, body = http_get(base + "/api/v1/items?limit=1")
        if status != 200:
            return None
        items = json.loads(body).get("items") or []
        return items[0]["code"] if items else None

    return str(wait_until(server, deadline, first_item, "item from /api/v1/items?limit=1"))


def wait_for_bare(server: Server, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    wait_until(server, deadline, lambda: True if http_get(base + "/")[0] == 200 else None, "200 from /")
    server.ready = True


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def largest_rss(root: int) -> dict[str, object]:
    sizes = {pid: kb for pid in process_tree(root) if (kb := rss_kb(pid)) is not None}
    if not sizes:
        raise BenchError(f"could not read VmRSS of pid {root} or its children")
    pid = max(sizes, key=sizes.__getitem__)
    return {"pid": pid, "rss_mb": round(sizes[pid] / 1024, 1), "processes": len(sizes)}


# ---------------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------------


def redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def service_env(args: argparse.Namespace, port: int, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "YWT_SERVER__PORT": str(port),
            "YWT_APP__DATA_DIR": str(tmp),
            "YWT_DATABASE__URL": args.database_url or f"sqlite://{tmp}/bench.sqlite3",
            "YWT_APP__LOG_LEVEL": "WARNING",
        }
    )
    if args.redis_url:
        env["YWT_REDIS__URL"] = args.redis_url
    if args.workers:
        env["YWT_SERVER__WORKERS"] = str(args.workers)
    return env


def measure(wrk: str, scenario: Scenario, base: str, context: dict[str, str], seconds: int) -> dict:
    values = dict(context)
    headers = dict(scenario.headers)
    if scenario.setup is not None:
        prepared = scenario.setup(base)
        headers.update(prepared.headers)
        values.update(prepared.values)
    path = scenario.path.format(**{k: urllib.parse.quote(v, safe="") for k, v in values.items()})
    url = base + path
    script = BENCH_DIR / scenario.script if scenario.script else None
    if script is not None and not script.is_file():
        raise BenchError(f"{scenario.name}: wrk script not found: {script}")
    script_args = [arg.format(**values) for arg in scenario.script_args]
    print(f"  {scenario.name}: warm-up {WARMUP_SECONDS} s, then {seconds} s  {url}", flush=True)
    run_wrk(wrk_command(wrk, url, WARMUP_SECONDS, headers, script, script_args), WARMUP_SECONDS)
    cmd = wrk_command(wrk, url, seconds, headers, script, script_args)
    result = parse_wrk(run_wrk(cmd, seconds))
    return {"url": url, "wrk": " ".join(cmd), **asdict(result), "flagged": result.flagged}


def judge(scenario: Scenario, row: dict, bare_rps: float | None) -> None:
    ratio = row["requests_per_sec"] / bare_rps if bare_rps and scenario.target != "bare" else None
    row["ratio_vs_bare"] = round(ratio, 3) if ratio is not None else None
    checks = []
    if scenario.goal_ratio is not None:
        checks.append(ratio is not None and ratio >= scenario.goal_ratio)
    if scenario.goal_p99_ms is not None:
        checks.append(row["p99_ms"] is not None and row["p99_ms"] <= scenario.goal_p99_ms)
    row["goal"] = scenario.goal_text()
    row["met"] = all(checks) if checks else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict], rss: dict | None, bare_rss: dict | None) -> None:
    header = ["scenario", "req/s", "p50 ms", "p99 ms", "ratio vs bare", "goal", "met"]
    lines = []
    for row in rows:
        if "error" in row:
            lines.append([row["scenario"], "error", "-", "-", "-", row.get("goal", "-"), "could not run"])
            continue
        met = {True: "met", False: "NOT MET", None: "-"}[row["met"]]
        lines.append(
            [
                row["scenario"] + (" (!)" if row["flagged"] else ""),
                fmt(row["requests_per_sec"], ".0f"),
                fmt(row["p50_ms"], ".2f"),
                fmt(row["p99_ms"], ".2f"),
                fmt(row["ratio_vs_bare"], ".2f"),
                row["goal"],
                met,
            ]
        )
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=False)]
    right = {1, 2, 3, 4}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print()
    print(line(header))
    print(line(["-" * w for w in widths]))
    for cells in lines:
        print(line(cells))
    for row in rows:
        if "error" in row:
            print(f"\n{row['scenario']}: could not run: {row['error']}")
        elif row["flagged"]:
            errors = ", ".join(f"{k} {v}" for k, v in row["socket_errors"].items() if v) or "none"
            print(f"(!) {row['scenario']}: {row['non_2xx']} non-2xx/3xx responses, socket errors: {errors}")
    if rss is not None:
        verdict = "met" if rss["met"] else "NOT MET"
        print(
            f"\nservice RSS (largest of {rss['processes']} process(es), pid {rss['pid']}): "
            f"{rss['rss_mb']:.1f} MiB   goal <= {RSS_GOAL_MB:g} MiB: {verdict}"
        )
    if bare_rss is not None:
        print(f"bare app RSS: {bare_rss['rss_mb']:.1f} MiB (for reference)")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="wrk benchmark of the service against a bare Sanic app")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--database-url", help="database for the service (default: a temp SQLite file)")
    parser.add_argument("--redis-url", help="Redis for the service (default: config, i.e. memory://)")
    parser.add_argument("--workers", type=int, help="service workers (needs a real --redis-url to be > 1)")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")

    # a TERM to this script unwinds through the finally blocks like Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupted)

    try:
        wrk = ensure_wrk()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    python = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="ywt-bench-"))
    servers: list[Server] = []
    failed = False
    try:
        service_port, bare_port = free_port(), free_port()
        env = service_env(args, service_port, tmp)
        service = Server("service", [python, "-m", "api.cli", "serve"], env, tmp / "service.log")
        servers.append(service)
        bare = Server(
            "bare",
            [python, str(BENCH_DIR / "bare_app.py"), "--port", str(bare_port)],
            dict(os.environ),
            tmp / "bare.log",
        )
        servers.append(bare)
        bases = {"service": f"http://{HOST}:{service_port}", "bare": f"http://{HOST}:{bare_port}"}
        wait_for_bare(bare, bases["bare"])
        code = wait_for_service(service, bases["service"])
        print(f"both up; item scenario uses code {code}", flush=True)

        context = {"code": code}
        rows: list[dict] = []
        for scenario in SCENARIOS:
            row: dict = {"scenario": scenario.name, "target": scenario.target}
            try:
                row.update(measure(wrk, scenario, bases[scenario.target], context, args.duration))
            except BenchError as exc:
                failed = True
                row["error"] = str(exc)
                row["goal"] = scenario.goal_text()
                print(f"  {scenario.name}: could not run: {exc}", file=sys.stderr)
            rows.append(row)
        for server in (service, bare):
            if not server.alive():
                failed = True
                print(
                    f"{server.name} died during the runs; its output:\n{server.log_tail()}", file=sys.stderr
                )

        bare_rps = next(
            (r["requests_per_sec"] for r in rows if r["scenario"] == "bare" and "error" not in r), None
        )
        for scenario, row in zip(SCENARIOS, rows, strict=True):
            if "error" not in row:
                judge(scenario, row, bare_rps)

        rss = bare_rss = None
        try:
            rss = largest_rss(service.pid)
            rss["goal_mb"] = RSS_GOAL_MB
            rss["met"] = rss["rss_mb"] <= RSS_GOAL_MB
            bare_rss = largest_rss(bare.pid)
        except BenchError as exc:
            failed = True
            print(f"bench: {exc}", file=sys.stderr)

        print_table(rows, rss, bare_rss)
        report = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": args.duration,
            "warmup_s": WARMUP_SECONDS,
            "threads": THREADS,
            "connections": CONNECTIONS,
            "database_url": redact(env["YWT_DATABASE__URL"]),
            "redis_url": redact(args.redis_url) if args.redis_url else None,
            "workers": args.workers,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "scenarios": rows,
            "service_rss": rss,
            "bare_rss": bare_rss,
        }
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwritten to {RESULTS_FILE}")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
