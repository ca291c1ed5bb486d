"""The benchmark's report: goals met or not, the printed table, and the machine and versions it ran on."""
from __future__ import annotations

import os
import platform
import re
import sqlite3
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

from bench.environment import PROJECT_DIR

GUARDS = (
    "AGENT_SUBMIT_RATE=1000000/min (submit throttle raised); AGENT_RATE_LIMIT_* unset (no provider rate limit); "
    "AGENT_SIMULATED_FAILURE_RATE=0; DJANGO_LOG_LEVEL=WARNING (no per-task INFO lines, agent and no-op alike)"
)


def goal_rows(results: dict) -> list[tuple[str, str, str, str, object]]:
    """(scenario, figure, value, goal, met) for every goal, plus the absolute times as information."""
    rows = []
    r = results.get("1_submit")
    if r:
        rows.append(("1 submit", f"{r['items']} items, API call -> all queued (median of {r['repeats']})",
                     f"{r['median_seconds']:.3f} s", "<= 1 s", r["median_seconds"] <= 1.0))
        rows.append(("1 submit", "naive time / ours (whole API call)", f"{r['speedup_vs_naive']:.2f}x", ">= 5x",
                     r["speedup_vs_naive"] >= 5))
        rows.append(("1 submit", "naive / ours, enqueue step only", f"{r['enqueue_only_speedup_vs_naive']:.1f}x", "info", None))
        rows.append(("1 submit", "Redis round trips per submit: ours / naive",
                     f"{r['redis_round_trips_per_submit']} / {r['naive_redis_round_trips_per_submit']}", "info", None))
    r = results.get("2_overhead")
    if r:
        if "bare_vs_ours_cpu" in r:
            rows.append(("2 overhead", "CPU per answer: bare Huey task (same statements) / ours", f"{r['bare_vs_ours_cpu']:.3f}",
                         ">= 0.9", r["bare_vs_ours_cpu"] >= 0.9))
            rows.append(("2 overhead", "answers/s: ours / bare task; CPU ms per answer: bare",
                         f"{r['ours_vs_bare_rate']:.3f}; {r['bare_cpu_ms_per_answer']:.2f}", "info", None))
        rows.append(("2 overhead", "agent answers/s / Huey no-op tasks/s", f"{r['ratio']:.3f}", "info", None))
        rows.append(("2 overhead", "answers/s, no-op tasks/s (abs.)",
                     f"{r['agent_answers_per_second']:.0f}, {r['noop_tasks_per_second']:.0f}", "info", None))
        rows.append(("2 overhead", "CPU ms per answer / per no-op task (abs.)",
                     f"{r['agent_cpu_ms_per_answer']:.2f} / {r['noop_cpu_ms_per_task']:.3f}", "info", None))
        rows.append(("2 overhead", "ratio bound if an answer cost only its 3 ORM statements",
                     f"{r['ratio_bound_from_db_floor']:.3f}", "info", None))
        rows.append(("2 overhead", "other processes' load meanwhile (cores of 2)", f"{r['foreign_cpu_cores']:.2f}", "info", None))
    r = results.get("2_analysis_cost")
    if r:
        rows.append(("2 analysis", f"CPU per answer, analysis on / off - 1 ({r['answers_per_round']} answers x {r['rounds']})",
                     f"{r['analysis_cpu_share'] * 100:+.1f} %", "< +10 %", r["analysis_cpu_share"] < 0.10))
        rows.append(("2 analysis", "consumer CPU ms per answer: analysis on / off (abs.)",
                     f"{r['cpu_ms_per_answer_analysis_on']:.2f} / {r['cpu_ms_per_answer_analysis_off']:.2f}", "info", None))
        if "analysis_cpu_share_of_totals" in r:
            rows.append(("2 analysis", "the same rounds: all CPU on / off - 1; median of the pairs' ratios - 1",
                         f"{r['analysis_cpu_share_of_totals'] * 100:+.1f} %; "
                         f"{r['analysis_cpu_share_median_of_pairs'] * 100:+.1f} %", "info", None))
    r = results.get("3_latency_efficiency")
    if r:
        rows.append(("3 latency", f"answers/s / ideal {r['ideal_answers_per_second']:.0f}/s ({r['items']} items)",
                     f"{r['efficiency']:.3f}", ">= 0.9", r["efficiency"] >= 0.9))
        rows.append(("3 latency", "CPU cores our processes need at 320/s (of 2)", f"{r['cores_needed_at_ideal']:.2f}",
                     "info", None))
        rows.append(("3 latency", "whole-wave bound; our CPU use of 2 cores; other load (cores)",
                     f"{r['wave_bound']:.3f}; {r['cpu_utilisation']:.2f}; {r['foreign_cpu_cores']:.2f}", "info", None))
    r = results.get("4_progress_cost")
    if r:
        rows.append(("4 progress", "Redis round trips per answer beyond dequeue",
                     f"{r['round_trips_per_answer_beyond_dequeue']:.2f}", "<= 3",
                     r["round_trips_per_answer_beyond_dequeue"] <= 3))
        rows.append(("4 progress", "  of which Huey's own revoke check / ours",
                     f"{r['of_which_huey_own_per_task']:.2f} / {r['of_which_agent_per_answer']:.2f}", "info", None))
        rows.append(("4 progress", "Redis commands per answer (server; no-op task)",
                     f"{r['redis_commands_per_answer']:.1f} ({r['noop_redis_commands_per_task']:.1f})", "info", None))
        rows.append(("4 progress", "SQL queries per answer", f"{r['sql_queries_per_answer']:.1f}", "info", None))
    r = results.get("9_schedules")
    if r:
        rows.append(("9 schedules", f"{r['schedules']} schedules due at once -> all fired",
                     f"{r['seconds_until_all_fired']:.1f} s", f"<= {r['goal_seconds']:.0f} s",
                     r["seconds_until_all_fired"] <= r["goal_seconds"]))
        rows.append(("9 schedules", "runs / distinct (schedule, slot)", f"{r['runs']} / {r['distinct_slots']}",
                     f"= {r['schedules']}", r["runs"] == r["distinct_slots"] == r["schedules"]))
    r = results.get("5_status_endpoint")
    if r:
        if "ratio_live" in r:
            rows.append(("5 status", "status (live, Redis) req/s / trivial view", f"{r['ratio_live']:.3f}", ">= 0.7",
                         r["ratio_live"] >= 0.7))
        if "ratio_done" in r:
            rows.append(("5 status", "status (finished, DB) req/s / trivial view", f"{r['ratio_done']:.3f}", ">= 0.7",
                         r["ratio_done"] >= 0.7))
        for name in ("live", "done"):
            if f"cpu_ratio_{name}" in r:
                rows.append(("5 status", f"server CPU per request: trivial / status ({name})", f"{r[f'cpu_ratio_{name}']:.3f}",
                             "info", None))
        rows.append(("5 status", "req/s (abs.)", ", ".join(f"{k} {v:.0f}" for k, v in r["requests_per_second"].items()),
                     "info", None))
        if "ratio_304_vs_live" in r:
            rows.append(("5 status", "304 req/s / 200 req/s (unchanged updateId)", f"{r['ratio_304_vs_live']:.3f}", "> 1",
                         r["ratio_304_vs_live"] > 1))
        else:
            rows.append(("5 status", "If-None-Match -> 304", "missing (no ETag)", "present", False))
    r = results.get("6_memory")
    if r:
        rows.append(("6 memory", f"consumer RSS growth over {r['answers_after_warmup']} answers (worst process)",
                     f"{r['max_process_growth'] * 100:+.1f} %", "< 10 %", r["max_process_growth"] < 0.10))
    r = results.get("7_seed_design")
    if r:
        rows.append(("7 seed design", f"lost updates, ours ({r['items']} items, {r['threads']} threads)",
                     str(r["ours_lost_updates"]), "0", r["ours_lost_updates"] == 0))
        rows.append(("7 seed design", "lost updates, seed's read-modify-write",
                     f"{r['seed_lost_updates']} ({r['seed_final_status']})", "info", None))
    r = results.get("8_metrics_cost")
    if r:
        rows.append(("8 metrics cost", "Redis round trips per answer, before -> after metering",
                     f"{r['round_trips_per_answer_before']:.2f} -> {r['round_trips_per_answer_after']:.2f}", "no extra",
                     r["round_trips_per_answer_after"] == r["round_trips_per_answer_before"]))
        rows.append(("8 metrics cost", "CPU per answer counted (client + Redis), before -> after",
                     f"{r['client_cpu_us_per_answer_before'] + r['redis_server_us_per_answer_before']:.0f} -> "
                     f"{r['client_cpu_us_per_answer_after'] + r['redis_server_us_per_answer_after']:.0f} us", "info", None))
        whole = results.get("2_overhead", {}).get("agent_cpu_ms_per_answer")
        if whole:
            share = max(0.0, r["extra_cpu_us_per_answer"]) / (whole * 1000)
            rows.append(("8 metrics cost", "extra CPU of metering / CPU of a whole answer (scenario 2)",
                         f"{share * 100:.1f} %", "< 5 %", share < 0.05))
    return rows


def large_goal_rows(results: dict) -> list[tuple[str, str, str, str, object]]:
    """Rows of `bench/run.py --large` (bench/large.py's two worlds)."""
    rows = []
    data, runs = results.get("data", {}), results.get("runs", {})
    if "fixture_seconds" in data:
        rows.append(("L0 fixture", f"bench_fixture: {data['items_in_database']} answers built", f"{data['fixture_seconds']} s",
                     "info", None))
    r = data.get("L1_answers_pages")
    if r:
        rows.append(("L1 answers", f"keyset page 5,000 / page 1 ({r['answers']} answers, {r['page_size']} a page)",
                     f"{r['keyset_ratio_5000_vs_1']:.2f} ({r['keyset_page_5000_ms']} / {r['keyset_page_1_ms']} ms)", "<= 1.5",
                     r["keyset_ratio_5000_vs_1"] <= 1.5))
        rows.append(("L1 answers", "numbered ?page=5000 / ?page=1", f"{r['numbered_ratio_5000_vs_1']:.2f} "
                     f"({r['numbered_page_5000_ms']} / {r['numbered_page_1_ms']} ms)", "info", None))
    r = data.get("L2_csv_export")
    if r:
        rows.append(("L2 csv", f"peak RSS growth of the web worker, {r['answers']} answers ({r['bytes'] / 2**20:.0f} MB, "
                     f"{r['seconds']} s)", f"{r['rss_growth_mb']} MB", "< 50 MB", r["rss_growth_mb"] < 50))
    r = data.get("L3_admin")
    if r:
        worst = max(r, key=r.get)
        rows.append(("L3 admin", f"slowest admin list page ({worst.removesuffix('_ms')})", f"{r[worst]} ms", "< 500 ms",
                     r[worst] < 500))
    r = data.get("L4_pages")
    if r:
        rows.append(("L4 pages", "workspace page, run page, big run page, status, runs API (ms)",
                     ", ".join(str(v) for v in r.values()), "info", None))
    r = runs.get("L5_big_submit")
    if r:
        rows.append(("L5 big run", f"submit {r['prompts']} prompts x {r.get('samples', 1)} samples -> {r['items']} items queued "
                                   f"(median of {r['repeats']})",
                     f"{r['median_seconds']} s", "< 3 s", r["median_seconds"] < 3))
        rows.append(("L5 big run", "run page, answers API, status on that run (ms)",
                     f"{r['run_page_ms']}, {r['answers_api_ms']}, {r['status_ms']}", "info", None))
    r = runs.get("L5_big_run")
    if r:
        rows.append(("L5 big run", f"{r['items']} items answered, followed by run_group --wait: s, answers/s",
                     f"{r['seconds']} s, {r['answers_per_second']}/s ({r['ok']} ok)", "info", None))
        rows.append(("L5 big run", "meanwhile: run page, status median / max (ms); CLI exit after last answer (s)",
                     f"{r['run_page_ms_median']} / {r['run_page_ms_max']}, {r['status_ms_median']} / {r['status_ms_max']}; "
                     f"{r['cli_exit_after_last_answer_seconds']}", "info", None))
    r = runs.get("L6_slow_providers")
    if r:
        rows.append(("L6 slow", f"{r['queues']}x{r['workers_per_queue']} workers, {r['latency_ms'] / 1000:.0f} s calls: "
                     f"steady answers/s / ideal {r['ideal_answers_per_second']:.0f}", f"{r['efficiency']:.3f}", ">= 0.9",
                     r["efficiency"] >= 0.9))
        rows.append(("L6 slow", "RSS of the 4 consumers at peak (in flight)",
                     f"{r['rss_mb_peak']} MB ({r['peak_running_items']})", "< 1536 MB", r["rss_mb_peak"] < 1536))
        rows.append(("L6 slow", "calls in flight, mean / 1,000 (steady state)", f"{r.get('in_flight_ratio', 0):.3f}", ">= 0.9",
                     r.get("in_flight_ratio", 0) >= 0.9))
        rows.append(("L6 slow", "RSS per in-flight call; whole-run efficiency (incl. ramp-down)",
                     f"{r['rss_kb_per_in_flight_call']} KB; {r['whole_run_efficiency']:.3f}", "info", None))
    return rows


def large_table(results: dict) -> str:
    return _table(large_goal_rows(results))


def table(results: dict) -> str:
    return _table(goal_rows(results))


def _table(goal_rows_: list) -> str:
    rows = [("scenario", "figure", "value", "goal", "met")]
    rows += [(s, f, v, g, {True: "yes", False: "NO", None: ""}[m]) for s, f, v, g, m in goal_rows_]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine_and_versions(redis_client, quick: bool) -> dict:
    def command_version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).splitlines()[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            return "not installed"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    commit = command_version(["git", "-C", str(PROJECT_DIR), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(PROJECT_DIR), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "command": "python bench/run.py" + (" --quick" if quick else ""),
        "mode": "quick" if quick else "full",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git": commit + (" (+ uncommitted changes)" if dirty else ""),
        "machine": f"{os.cpu_count()} cores ({cpu}), {memory_kb / 2**20:.1f} GiB memory, {platform.platform()}",
        "versions": {
            "python": platform.python_version(), "django": version("django"),
            "djangorestframework": version("djangorestframework"),
            "huey": version("huey"), "redis-py": version("redis"), "hiredis": version("hiredis"),
            "redis-server": redis_client.info("server")["redis_version"], "sqlite": sqlite3.sqlite_version,
            "gunicorn": version("gunicorn"), "wrk": command_version(["wrk", "-v"]).split(" [")[0],
        },
        "guards": GUARDS,
    }
