"""bench/run.py's arithmetic and reports: medians and spread across rounds, ratios within a round, goals
judged on the medians (one req/s goal per database kind), the Markdown table. Pure functions: no wrk, no
server, no timing asserted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "run.py"
_spec = importlib.util.spec_from_file_location("bench_run", _PATH)
assert _spec and _spec.loader
run = importlib.util.module_from_spec(_spec)
sys.modules["bench_run"] = run  # dataclasses resolve their module by name
_spec.loader.exec_module(run)


def row(scenario: str, round_no: int, rps: float, p50: float = 1.0, p99: float = 10.0, **extra) -> dict:
    return {
        "workers": 1,
        "round": round_no,
        "scenario": scenario,
        "target": "bare" if scenario == "bare" else "service",
        "requests_per_sec": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": 0,
        "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        "flagged": False,
        **extra,
    }


def scenario(name: str) -> run.Scenario:
    return next(s for s in run.SCENARIOS if s.name == name)


def test_a_ratio_is_taken_against_the_bare_runs_beside_it_in_the_same_round():
    first = [row("bare", 1, 10_000), row("item", 1, 6_000), row("bare", 1, 14_000), row("me", 1, 3_000)]
    first.append(row("bare", 1, 6_000))
    second = [row("bare", 2, 5_000), row("item", 2, 4_000), row("bare", 2, 5_000)]
    run.with_ratios(first)
    run.with_ratios(second)
    assert first[1]["ratio_vs_bare"] == 0.5  # 6 000 over the mean of 10 000 and 14 000
    assert first[3]["ratio_vs_bare"] == 0.3  # over 14 000 and 6 000: not the round's first bare run
    assert second[1]["ratio_vs_bare"] == 0.8
    assert first[0]["ratio_vs_bare"] is None  # bare itself


def test_a_bare_run_that_failed_leaves_the_one_on_the_other_side():
    failed = {"workers": 1, "round": 1, "scenario": "bare", "target": "bare", "error": "wrk exited 1"}
    rows = [row("bare", 1, 10_000), row("item", 1, 6_000), failed]
    run.with_ratios(rows)
    assert rows[1]["ratio_vs_bare"] == 0.6


def test_no_ratio_when_bare_could_not_run():
    rows = [{"workers": 1, "round": 1, "scenario": "bare", "target": "bare", "error": "wrk exited 1"}]
    rows.append(row("item", 1, 6_000))
    run.with_ratios(rows)
    assert rows[1]["ratio_vs_bare"] is None


def test_a_round_runs_bare_before_every_scenario_and_after_the_last():
    chosen = [scenario("bare"), scenario("item"), scenario("me"), scenario("submit")]
    names = [s.name for s in run.round_order(chosen)]
    assert names == ["bare", "item", "bare", "me", "bare", "submit", "bare"]


def test_summary_gives_medians_and_the_spread_across_rounds():
    rows = [
        row("item", 1, 6_000, p50=2.0, p99=30.0, ratio_vs_bare=0.5),
        row("item", 2, 9_000, p50=1.0, p99=12.0, ratio_vs_bare=0.75),
        row("item", 3, 7_000, p50=1.5, p99=20.0, ratio_vs_bare=0.7),
    ]
    s = run.summarise(rows)
    assert s["requests_per_sec"] == 7_000
    assert s["requests_per_sec_spread"] == [6_000, 9_000]
    assert s["p50_ms"] == 1.5
    assert s["p99_ms"] == 20.0
    assert s["p99_ms_spread"] == [12.0, 30.0]
    assert s["ratio_vs_bare"] == 0.7
    assert s["ratio_vs_bare_spread"] == [0.5, 0.75]
    assert (s["rounds"], s["rounds_ok"]) == (3, 3)
    assert s["flagged"] is False and s["stuck_after_rounds"] == []


def test_summary_of_an_even_number_of_rounds_takes_the_middle_two():
    rows = [row("item", 1, 6_000, ratio_vs_bare=0.5), row("item", 2, 8_000, ratio_vs_bare=0.7)]
    s = run.summarise(rows)
    assert s["requests_per_sec"] == 7_000
    assert s["ratio_vs_bare"] == pytest.approx(0.6)


def test_summary_skips_failed_rounds_and_reports_them():
    rows = [
        row("me", 1, 1_000, ratio_vs_bare=0.1),
        {"workers": 1, "round": 2, "scenario": "me", "target": "service", "error": "sign-in: HTTP 503"},
        row("me", 3, 3_000, ratio_vs_bare=0.3, flagged=True, non_2xx=4, stuck_after=True),
    ]
    s = run.summarise(rows)
    assert s["requests_per_sec"] == 2_000
    assert (s["rounds"], s["rounds_ok"]) == (3, 2)
    assert s["errors"] == ["round 2: sign-in: HTTP 503"]
    assert s["flagged"] is True and s["non_2xx"] == 4
    assert s["stuck_after_rounds"] == [3]


def test_summary_of_a_scenario_that_never_ran_is_an_error():
    rows = [{"workers": 2, "round": 1, "scenario": "queue", "target": "service", "error": "boom"}]
    s = run.summarise(rows)
    assert s["error"] == "boom"
    run.judge(scenario("queue"), s, "postgres")
    assert s["met"] is None


def test_goals_are_judged_on_the_medians():
    rows = [
        row("item", 1, 6_000, p99=40.0, ratio_vs_bare=0.55),  # one bad round
        row("item", 2, 9_000, p99=20.0, ratio_vs_bare=0.7),
        row("item", 3, 8_000, p99=22.0, ratio_vs_bare=0.65),
    ]
    s = run.summarise(rows)
    run.judge(scenario("item"), s, "postgres")
    assert s["met"] is True
    assert s["goal"] == ">=0.6x bare, p99<=25ms"


def test_a_p99_over_the_goal_is_not_met_whatever_the_ratio():
    rows = [row("points_near", n, 9_000, p99=30.0, ratio_vs_bare=0.9) for n in (1, 2, 3)]
    s = run.summarise(rows)
    run.judge(scenario("points_near"), s, "sqlite")
    assert s["met"] is False


def test_the_submit_goal_depends_on_the_database_kind():
    rows = [row("submit", n, 450.0, p99=500.0) for n in (1, 2, 3)]
    on_sqlite, on_postgres = run.summarise(rows), run.summarise(rows)
    run.judge(scenario("submit"), on_sqlite, "sqlite")
    run.judge(scenario("submit"), on_postgres, "postgres")
    assert on_sqlite["met"] is True and on_sqlite["goal"] == ">=300/s (on sqlite)"
    assert on_postgres["met"] is False and on_postgres["goal"] == ">=600/s (on postgres)"


def test_a_database_kind_without_a_goal_is_reported_not_judged():
    only_postgres = run.Scenario("x", "/x", goal_rps={"postgres": 600})
    s = run.summarise([row("x", 1, 10.0)])
    run.judge(only_postgres, s, "sqlite")
    assert s["met"] is None
    assert "not on sqlite" in s["goal"]


def test_the_goals_are_issue_9s_table():
    goals = {s.name: (s.goal_ratio, s.goal_p99_ms, s.goal_rps) for s in run.SCENARIOS}
    assert goals == {
        "bare": (None, None, None),
        "item": (0.6, 25, None),
        "points_near": (0.4, 25, None),
        "me": (0.25, 50, None),
        "queue": (0.08, 100, None),
        "submit": (None, None, {"postgres": 600, "sqlite": 300}),
        "wechat_callback": (0.2, 100, None),
        "licence_verify": (None, None, {"postgres": 1000}),
        "licence_present": (None, None, {"postgres": 200}),
    }


def test_the_wechat_callback_writes_and_warms_up_with_wrk_on_a_file_of_its_own():
    callback = scenario("wechat_callback")
    assert callback.writes and callback.warmup == "wrk"
    assert scenario("submit").warmup == "waiting"
    values = {"requests": "/tmp/x"}
    assert run.script_arguments(callback, values, "warmup") == ["/tmp/x/warmup.tsv", str(run.THREADS)]
    assert run.script_arguments(callback, values, "run") == ["/tmp/x/run.tsv", str(run.THREADS)]
    names = [s.name for s in run.round_order([scenario("bare"), scenario("item"), callback])]
    assert names == ["bare", "item", "bare", "wechat_callback", "bare"]


# config.toml's sandbox keys, as the service runs with them
SANDBOX_KEYS = run.CallbackKeys(
    "ywt-sandbox-callback-token", "s5TYDuQaJI8n7Z1FDOFNTh4j6XO7SUrupzUDIbQDgS8", "wx0000000000sandbox"
)


def test_the_prepared_callbacks_open_and_verify_as_wechat_signs_them_each_with_a_msgid_of_its_own():
    import time
    import urllib.parse

    import xmltodict
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.utils import check_signature

    signer = run.CallbackSigner(SANDBOX_KEYS)
    openids = [run.wechat_openid() for _ in range(3)]
    assert all(len(o) == 28 and o.startswith("o") for o in openids)
    lines = signer.lines(30, 1_000, openids)
    crypto = WeChatCrypto(*(SANDBOX_KEYS.token, SANDBOX_KEYS.encoding_aes_key, SANDBOX_KEYS.app_id))
    msgids, senders = [], set()
    for line in lines:
        path, body = line.split("\t")
        assert "\n" not in body and "\t" not in body
        url = urllib.parse.urlsplit(path)
        assert url.path == "/api/v1/wechat/callback"
        query = dict(urllib.parse.parse_qsl(url.query))
        assert query["encrypt_type"] == "aes"
        assert abs(int(query["timestamp"]) - time.time()) < 60
        check_signature(SANDBOX_KEYS.token, query["signature"], query["timestamp"], query["nonce"])
        inner = crypto.decrypt_message(body, query["msg_signature"], query["timestamp"], query["nonce"])
        message = xmltodict.parse(inner)["xml"]
        assert (message["MsgType"], message["Content"], message["ToUserName"]) == (
            "text",
            "进度",
            run.WECHAT_ACCOUNT,
        )
        assert message["FromUserName"] == query["openid"]
        senders.add(message["FromUserName"])
        msgids.append(int(message["MsgId"]))
    assert msgids == list(range(1_000, 1_030))  # distinct: the handling is measured, not the de-duplication
    assert senders == set(openids)


def test_a_run_whose_script_ran_out_of_prepared_requests_is_flagged():
    output = """Running 10s test @ http://127.0.0.1:1/api/v1/wechat/callback
  Latency Distribution
     50%    5.00ms
     99%   20.00ms
  12000 requests in 10.00s, 9.00MB read
Requests/sec:   1200.00
Transfer/sec:      0.90MB
Requests prepared: 10000, sent: 12064, reused: 2064
"""
    result = run.parse_wrk(output)
    assert result.reused == 2064 and result.flagged
    assert not run.parse_wrk(output.replace("reused: 2064", "reused: 0")).flagged
    rows = [row("wechat_callback", 1, 1_200.0, flagged=True, reused=2064)]
    assert "2064 prepared requests sent again" in run.notes([run.summarise(rows)])[0]


def test_worker_counts_are_a_comma_list():
    assert run.parse_workers("1") == [1]
    assert run.parse_workers("1, 2,2") == [1, 2]
    for bad in ("", "0", "x", "1,,2", "-1", "65"):
        with pytest.raises(ValueError):
            run.parse_workers(bad)


def test_more_than_one_worker_needs_a_shared_redis(capsys):
    with pytest.raises(SystemExit) as exited:
        run.main(["--workers", "1,2"])
    assert exited.value.code == 2
    assert "needs a Redis the workers share" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run.main(["--workers", "2", "--redis-url", "memory://"])
    assert run.is_shared_redis("redis://127.0.0.1:6379/14")
    assert not run.is_shared_redis(None)


def _report(summaries: list[dict]) -> dict:
    return {
        "when": "2026-12-02T19:00:00+00:00",
        "commit": "abc1234+dirty",
        "duration_s": 5,
        "warmup_s": 2,
        "runs": 3,
        "workers": [1, 2],
        "threads": 2,
        "connections": 64,
        "database": "postgres",
        "database_url": "postgres://postgres@127.0.0.1:5432/ywt_bench_1",
        "cases_prepared": 100_000,
        "redis": "redis",
        "redis_url": "redis://127.0.0.1:6379/14",
        "python": "3.11.7",
        "cpus": 2,
        "summary": summaries,
        "service_rss": {"1": {"processes": 1, "rss_mb": 100.0, "met": True, "after_all_mb": 101.0}},
        "bare_rss": {"rss_mb": 30.0},
    }


def test_the_markdown_report_names_what_ran_and_has_one_row_per_worker_count_and_scenario():
    summaries = []
    for workers in (1, 2):
        rounds = [row("bare", n, 10_000) for n in (1, 2, 3)] + [
            row("item", n, 6_000 + 1_000 * n, p99=20.0 + n) for n in (1, 2, 3)
        ]
        for r in rounds:
            r["workers"] = workers
        for n in (1, 2, 3):
            run.with_ratios([r for r in rounds if r["round"] == n])
        for name in ("bare", "item"):
            s = run.summarise([r for r in rounds if r["scenario"] == name])
            run.judge(scenario(name), s, "postgres")
            summaries.append(s)
    text = run.markdown_report(_report(summaries))
    assert "`abc1234+dirty`" in text
    assert "database: postgres" in text and "redis: redis" in text
    assert "workers: 1, 2; runs (rounds): 3; duration: 5 s" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(run.TABLE_HEADER) + " |"
    assert len(table) == 2 + 4  # header, rule, 2 worker counts × (bare, item)
    assert table[3] == (
        "| 1 | item | 8000 | 7000–9000 | 1.00 | 22.00 | 0.80 | 0.70–0.90 | >=0.6x bare, p99<=25ms | met |"
    )
    assert "service RSS, 1 worker(s)" in text


def test_the_markdown_report_escapes_pipes_and_lists_errors():
    broken = {"workers": 1, "scenario": "me", "rounds": 1, "rounds_ok": 0, "error": "HTTP 503 | down"}
    run.judge(scenario("me"), broken, "sqlite")
    text = run.markdown_report(_report([broken]))
    assert "could not run" in text
    assert "HTTP 503 \\| down" in text


def test_the_commit_is_marked_dirty_when_tracked_files_changed(monkeypatch):
    answers = iter(["abc1234\n", " M bench/run.py\n"])

    class Done:
        def __init__(self) -> None:
            self.stdout = next(answers)

    monkeypatch.setattr(run.subprocess, "run", lambda *a, **k: Done())
    assert run.git_commit() == "abc1234+dirty"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379",  # database 0: usually somebody's own
        "redis://127.0.0.1:6379/0",
        "redis://10.0.0.5:6379/14",  # not this machine
        "redis://127.0.0.1@elsewhere.example:6379/14",
        "unix:///run/redis.sock?db=14",
        "rediss://127.0.0.1:6379/14",
    ],
)
def test_the_bench_empties_only_a_numbered_redis_database_on_this_machine(url, monkeypatch):
    import redis

    def never(*args, **kwargs):
        raise AssertionError("the bench connected to a Redis it must not empty")

    monkeypatch.setattr(redis.Redis, "from_url", never)
    with pytest.raises(run.BenchError):
        run.empty_redis(url)
