#!/usr/bin/env python
"""Benchmarks of the agent (issue 7): `python bench/run.py [--quick]`.

Starts its own redis-server, SQLite database, consumers and web server, runs every scenario,
prints a table and writes bench/results.json (scenario -> figures). The machines are shared
and noisy, so every goal is a ratio against a baseline measured in this same run, or a count;
absolute times are printed for information only. `--quick` runs everything scaled down (under a
minute) so CI keeps the suite alive; it exits non-zero when a scenario fails to run or a
correctness count is wrong (a lost update, an unanswered item, a group left open), never
because a noisy machine missed a speed goal.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.environment import PROJECT_DIR, bench_environment  # noqa: E402
from bench.harness import QUEUES, BenchError, Harness, cpu_seconds, deadline_wait, rss_bytes  # noqa: E402

RESULTS_PATH = PROJECT_DIR / "bench" / "results.json"
GUARDS = (
    "AGENT_SUBMIT_RATE=1000000/min (submit throttle raised); AGENT_RATE_LIMIT_* unset (no provider rate limit); "
    "AGENT_SIMULATED_FAILURE_RATE=0; DJANGO_LOG_LEVEL=WARNING (no per-task INFO lines, agent and no-op alike)"
)


@dataclass(frozen=True)
class Scale:
    submit_prompts: int  # x 4 providers per submitted group
    submit_repeats: int
    seed_prompts: int
    seed_threads: int
    workers: int  # per queue, scenarios 2, 4, 6
    warmup_prompts: int
    overhead_prompts: int
    overhead_rounds: int
    noop_per_queue: int
    memory_items: int
    latency_items: int
    latency_repeats: int
    status_seconds: int
    status_rounds: int


FULL = Scale(submit_prompts=1000, submit_repeats=5, seed_prompts=1000, seed_threads=16, workers=4, warmup_prompts=1000,
             overhead_prompts=1000, overhead_rounds=3, noop_per_queue=4000, memory_items=20000, latency_items=2000,
             latency_repeats=3, status_seconds=4, status_rounds=3)
QUICK = Scale(submit_prompts=250, submit_repeats=3, seed_prompts=200, seed_threads=16, workers=4, warmup_prompts=50,
              overhead_prompts=250, overhead_rounds=1, noop_per_queue=1000, memory_items=2000, latency_items=640,
              latency_repeats=1, status_seconds=1, status_rounds=1)
LATENCY_MS, LATENCY_WORKERS = 200, 16


@dataclass(frozen=True)
class Round:
    items: int
    seconds: float
    cpu_seconds: float  # consumers + redis-server

    @property
    def rate(self) -> float:
        return self.items / self.seconds


class Bench:
    def __init__(self, *, scale: Scale, harness: Harness, redis_server) -> None:
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        from oneglanse.queues import redis_client

        self.scale, self.harness, self.redis_server = scale, harness, redis_server
        self.redis = redis_client()
        self.user = get_user_model().objects.create_user(username="bench", password="bench-password-not-secret")
        self.token = Token.objects.create(user=self.user).key
        self.workspaces: dict[int, object] = {}
        self.results: dict[str, dict] = {}
        self.failures: list[str] = []  # correctness counts that are wrong

    # -- fixtures ---------------------------------------------------------------------------
    def workspace(self, prompts: int):
        """A workspace with `prompts` active prompts and all four providers, made once per size."""
        if prompts not in self.workspaces:
            from prompts.models import Prompt
            from workspaces.services import workspace_create

            workspace = workspace_create(user=self.user, name=f"Bench {prompts}", enabled_providers=list(QUEUES))
            Prompt.objects.bulk_create(
                [Prompt(workspace=workspace, text=f"What are the best CRM tools for team {n} of {prompts}?") for n in range(prompts)]
            )
            self.workspaces[prompts] = workspace
        return self.workspaces[prompts]

    def queue_keys(self) -> list[str]:
        from oneglanse.queues import huey_for

        return [huey_for(p).storage.queue_key for p in QUEUES]

    def submit(self, prompts: int):
        from agent.services import job_group_submit

        return job_group_submit(workspace=self.workspace(prompts), user=self.user).job_group

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)
            print(f"  !! {message}")

    # -- rounds -----------------------------------------------------------------------------
    def agent_round(self, prompts: int, consumers) -> tuple[Round, str]:
        """Submit a group and time it until every item is finished in the database."""
        from agent.models import JobItem

        pids = [p.pid for p in consumers] + [self.redis_server.process.pid]
        group = self.submit(prompts)
        started, cpu = time.perf_counter(), cpu_seconds(pids)
        unfinished = JobItem.objects.filter(group_id=group.id, status__in=JobItem.UNFINISHED)
        n = group.expected_responses
        deadline_wait(lambda: not unfinished.exists(), timeout=60 + n / 10, what=f"group of {n} items", alive=consumers)
        return Round(n, time.perf_counter() - started, cpu_seconds(pids) - cpu), str(group.id)

    def noop_round(self, per_queue: int, consumers) -> Round:
        """Push `per_queue` no-op tasks (+ a marker) on each no-op queue; time until every marker ran."""
        from bench.noop_consumer import NOOP_DONE_KEY, noop_huey

        pids = [p.pid for p in consumers] + [self.redis_server.process.pid]
        self.redis.delete(NOOP_DONE_KEY)
        pipeline = self.redis.pipeline(transaction=False)
        for queue in QUEUES:
            huey = noop_huey(queue)
            messages = [huey.serialize_task(huey.noop_task.s()) for _ in range(per_queue)]
            huey.storage.enqueue_many_on(pipeline, [*messages, huey.serialize_task(huey.marker_task.s())])
        pipeline.execute()
        started, cpu = time.perf_counter(), cpu_seconds(pids)
        deadline_wait(lambda: self.redis.llen(NOOP_DONE_KEY) >= len(QUEUES), timeout=60 + per_queue / 50,
                      what="no-op batch", alive=consumers)
        return Round(per_queue * len(QUEUES), time.perf_counter() - started, cpu_seconds(pids) - cpu)

    def groups_closed(self, group_ids: list[str], expected_ok: int) -> None:
        """Correctness counts: every item answered ok, every group closed `completed` by the consumers."""
        from agent.models import JobGroup, JobItem

        open_groups = JobGroup.objects.filter(id__in=group_ids).exclude(status=JobGroup.Status.COMPLETED)
        try:
            deadline_wait(lambda: not open_groups.exists(), timeout=10, what="groups closed", interval=0.1)
        except BenchError:
            pass
        ok = JobItem.objects.filter(group_id__in=group_ids, status=JobItem.Status.OK).count()
        stuck = open_groups.count()
        self.check(ok == expected_ok, f"{expected_ok - ok} of {expected_ok} items not answered ok")
        self.check(stuck == 0, f"{stuck} of {len(group_ids)} groups left open after every item finished")

    # -- scenario 1 -------------------------------------------------------------------------
    def scenario_submit(self) -> None:
        """API call -> every item on its queue; bulk (ours) against one LPUSH round trip per item."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from rest_framework.test import APIClient

        import agent.services
        from bench.redis_counter import redis_counter_snapshot

        scale = self.scale
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        workspace = self.workspace(scale.submit_prompts)
        expected = scale.submit_prompts * len(QUEUES)
        bulk = agent.services.job_group_enqueue
        enqueue_seconds: list[float] = []

        def timed(enqueue):
            def wrapper(*, group):
                started = time.perf_counter()
                try:
                    return enqueue(group=group)
                finally:
                    enqueue_seconds.append(time.perf_counter() - started)
            return wrapper

        def once(enqueue) -> tuple[float, float, int, int]:
            self.redis.delete(*self.queue_keys())
            agent.services.job_group_enqueue = timed(enqueue)
            round_trips = sum(redis_counter_snapshot().values())
            try:
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.post(f"/api/workspaces/{workspace.id}/runs/")
                    pipeline = self.redis.pipeline(transaction=False)
                    for key in self.queue_keys():
                        pipeline.llen(key)
                    queued = sum(pipeline.execute())
                    elapsed = time.perf_counter() - started
            finally:
                agent.services.job_group_enqueue = bulk
            if response.status_code != 202 or queued != expected:
                raise BenchError(f"submit: HTTP {response.status_code}, {queued} of {expected} items queued: {response.content[:300]}")
            round_trips = sum(redis_counter_snapshot().values()) - round_trips - 1  # less our LLEN pipeline
            return elapsed, enqueue_seconds[-1], len(queries), round_trips

        once(bulk), once(job_group_enqueue_naive)  # warm-up: URL resolver, imports, SQLite cache
        runs = {"bulk": [], "naive": []}
        for _ in range(scale.submit_repeats):  # interleaved, so both see the same machine
            runs["bulk"].append(once(bulk))
            runs["naive"].append(once(job_group_enqueue_naive))
        self.redis.delete(*self.queue_keys())  # no consumer is to run these groups
        med = {name: [statistics.median(r[i] for r in rs) for i in range(4)] for name, rs in runs.items()}
        self.results["1_submit"] = {
            "items": expected,
            "repeats": scale.submit_repeats,
            "median_seconds": med["bulk"][0],
            "naive_median_seconds": med["naive"][0],
            "speedup_vs_naive": med["naive"][0] / med["bulk"][0],
            "enqueue_only_seconds": med["bulk"][1],
            "naive_enqueue_only_seconds": med["naive"][1],
            "enqueue_only_speedup_vs_naive": med["naive"][1] / med["bulk"][1],
            "sql_queries_per_submit": med["bulk"][2],
            "redis_round_trips_per_submit": med["bulk"][3],
            "naive_redis_round_trips_per_submit": med["naive"][3],
        }

    # -- scenario 7 -------------------------------------------------------------------------
    def scenario_seed_design(self) -> None:
        """Many threads count the same group's items: the seed's read-modify-write against agent.progress."""
        from agent import progress
        from agent.models import JobItem
        from bench.seed_progress import seed_progress_create, seed_progress_item_finished, seed_progress_read

        group = self.submit(self.scale.seed_prompts)
        self.redis.delete(*self.queue_keys())  # the threads below finish these items, no consumer does
        items = list(JobItem.objects.filter(group=group).values_list("id", "provider"))
        expected = len(items)
        seed_progress_create(self.redis, group_id=group.id, expected_by_provider=dict(Counter(p for _, p in items)),
                             total_prompts=group.total_prompts)

        def hammer(finish) -> float:
            started = time.perf_counter()
            with ThreadPoolExecutor(self.scale.seed_threads) as pool:
                list(pool.map(finish, items))
            return time.perf_counter() - started

        seed_seconds = hammer(lambda item: seed_progress_item_finished(self.redis, group_id=group.id, provider=item[1]))
        ours_seconds = hammer(lambda item: progress.progress_item_finished(
            group_id=group.id, item_id=item[0], provider=item[1], status=JobItem.Status.OK))
        seed = seed_progress_read(self.redis, group_id=group.id)
        ours = progress.progress_read_live(group.id) or {"stats": {"actualResponses": 0}, "status": "missing"}
        lost_ours = expected - ours["stats"]["actualResponses"]
        self.results["7_seed_design"] = {
            "items": expected,
            "threads": self.scale.seed_threads,
            "seed_lost_updates": expected - seed["stats"]["actualResponses"],
            "seed_final_status": seed["status"],
            "ours_lost_updates": lost_ours,
            "ours_final_status": ours["status"],
            "seed_seconds": seed_seconds,
            "ours_seconds": ours_seconds,
        }
        self.check(lost_ours == 0, f"agent.progress lost {lost_ours} of {expected} concurrent updates")
        self.check(ours["status"] == "completed", f"agent.progress left the group {ours['status']!r} after every item counted")

    # -- in-process costs of one answer (part of scenario 4) ---------------------------------
    def answer_costs_in_process(self, prompts: int = 10) -> dict:
        """SQL queries and Redis round trips of item_run, run here with a 0 ms provider (no Huey)."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from agent.models import JobItem
        from agent.services import item_run
        from bench.redis_counter import redis_counter_snapshot

        group = self.submit(prompts)
        self.redis.delete(*self.queue_keys())
        items = list(JobItem.objects.filter(group=group).values_list("id", "provider"))
        round_trips = sum(redis_counter_snapshot().values())
        with CaptureQueriesContext(connection) as queries:
            for item_id, provider in items:
                item_run(item_id=item_id, provider_id=provider)
        round_trips = sum(redis_counter_snapshot().values()) - round_trips
        statements = Counter(q["sql"].split()[0].upper() for q in queries.captured_queries)
        return {
            "sql_queries_per_answer": len(queries) / len(items),
            "sql_by_statement_per_answer": {k: v / len(items) for k, v in statements.most_common()},
            "redis_round_trips_per_answer_in_task_body": round_trips / len(items),
        }

    def commandstats(self) -> Counter:
        return Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in self.redis.info("commandstats").items()})

    def commands_during(self, run, idle_per_second: Counter) -> tuple[Counter, object]:
        """Server-side command counts of `run()`, less the idle polls of every consumer over that time."""
        self.redis.config_resetstat()
        started = time.perf_counter()
        outcome = run()
        elapsed = time.perf_counter() - started
        counts = self.commandstats()
        for command, rate in idle_per_second.items():
            counts[command] = max(0, counts[command] - rate * elapsed)
        for command in ("info", "config", "llen"):  # the benchmark's own
            counts.pop(command, None)
        return +counts, outcome

    def idle_commands_per_second(self, seconds: float = 1.5) -> Counter:
        self.redis.config_resetstat()
        time.sleep(seconds)
        counts = self.commandstats()
        return Counter({k: v / seconds for k, v in counts.items() if k not in ("info", "config")})

    # -- scenarios 2, 4 and 6: one set of 0 ms consumers -------------------------------------
    def scenario_zero_latency(self) -> None:
        """Overhead (2), progress cost (4) and memory (6) on agent and no-op consumers with the same settings."""
        from bench.redis_counter import redis_counter_read, redis_script_names

        scale = self.scale
        costs = self.answer_costs_in_process()
        harness = self.harness
        counted = dict(settings="bench.instrumented_settings")
        agents = harness.consumers(workers=scale.workers, latency_ms=0, **counted)
        noops = harness.consumers(workers=scale.workers, latency_ms=0, noop=True, **counted)
        everyone = agents + noops
        try:
            # Warm-up: every worker thread opens its connections and every module is imported.
            warm, warm_group = self.agent_round(scale.warmup_prompts, everyone)
            self.noop_round(scale.noop_per_queue // 4, everyone)
            group_ids = [warm_group]
            time.sleep(1.2)  # two counter dumps: the snapshots below are current
            rss_warm = rss_bytes(agents)
            agent_pids, noop_pids = {p.pid for p in agents}, {p.pid for p in noops}
            agent_counts0 = redis_counter_read(harness.counter_dir, agent_pids)
            noop_counts0 = redis_counter_read(harness.counter_dir, noop_pids)

            idle = self.idle_commands_per_second()
            agent_rounds, noop_rounds = [], []
            agent_commands, noop_commands = Counter(), Counter()
            for index in range(scale.overhead_rounds):
                commands, (agent_round, group_id) = self.commands_during(
                    lambda: self.agent_round(scale.overhead_prompts, everyone), idle)
                agent_rounds.append(agent_round)
                group_ids.append(group_id)
                agent_commands += commands
                commands, noop_round = self.commands_during(lambda: self.noop_round(scale.noop_per_queue, everyone), idle)
                noop_rounds.append(noop_round)
                noop_commands += commands
            time.sleep(1.2)
            agent_counts = redis_counter_read(harness.counter_dir, agent_pids) - agent_counts0
            noop_counts = redis_counter_read(harness.counter_dir, noop_pids) - noop_counts0

            answers_after_warmup = sum(r.items for r in agent_rounds)
            while answers_after_warmup < scale.memory_items:
                extra, group_id = self.agent_round(scale.overhead_prompts, everyone)
                group_ids.append(group_id)
                answers_after_warmup += extra.items
            rss_after = rss_bytes(agents)
            self.groups_closed(group_ids, expected_ok=warm.items + answers_after_warmup)
        finally:
            harness.stop(everyone)

        agent_rate = statistics.median(r.rate for r in agent_rounds)
        noop_rate = statistics.median(r.rate for r in noop_rounds)
        agent_cpu = statistics.median(r.cpu_seconds / r.items for r in agent_rounds)
        noop_cpu = statistics.median(r.cpu_seconds / r.items for r in noop_rounds)
        cores = os.cpu_count() or 1
        self.results["2_overhead"] = {
            "workers_per_queue": scale.workers,
            "rounds": scale.overhead_rounds,
            "agent_answers_per_round": agent_rounds[0].items,
            "noop_tasks_per_round": noop_rounds[0].items,
            "agent_answers_per_second": agent_rate,
            "noop_tasks_per_second": noop_rate,
            "ratio": agent_rate / noop_rate,
            "agent_cpu_ms_per_answer": agent_cpu * 1000,
            "noop_cpu_ms_per_task": noop_cpu * 1000,
            "cpu_ratio": noop_cpu / agent_cpu,
            "agent_cpu_utilisation": statistics.median(r.cpu_seconds / r.seconds for r in agent_rounds) / cores,
            "noop_cpu_utilisation": statistics.median(r.cpu_seconds / r.seconds for r in noop_rounds) / cores,
        }

        names = redis_script_names()

        def per_item(counts: Counter, items: int, phase: str) -> dict[str, float]:
            picked = {}
            for key, n in counts.items():
                key_phase, label = key.split(":", 1)
                if key_phase == phase and label != "TASKS-EXECUTED":
                    if label.startswith("EVALSHA:"):
                        label = f"EVALSHA {names.get(label[8:], label[8:])}"
                    picked[label] = round(n / items, 3)
            return dict(sorted(picked.items(), key=lambda kv: -kv[1]))

        answers = agent_counts["loop:TASKS-EXECUTED"]
        noop_tasks = noop_counts["loop:TASKS-EXECUTED"]
        agent_task = per_item(agent_counts, answers, "task")
        noop_task = per_item(noop_counts, noop_tasks, "task")
        agent_answers = sum(r.items for r in agent_rounds)
        noop_all = sum(r.items for r in noop_rounds) + len(QUEUES) * scale.overhead_rounds
        self.results["4_progress_cost"] = {
            "answers_counted": answers,
            "round_trips_per_answer_beyond_dequeue": sum(agent_task.values()),
            "of_which_huey_own_per_task": sum(noop_task.values()),
            "of_which_agent_per_answer": sum(agent_task.values()) - sum(noop_task.values()),
            "round_trips_by_command_per_answer": agent_task,
            "huey_noop_round_trips_by_command_per_task": noop_task,
            "consumer_loop_round_trips_per_answer": per_item(agent_counts, answers, "loop"),
            "redis_commands_per_answer": sum(agent_commands.values()) / agent_answers,
            "redis_commands_by_name_per_answer": {k: round(v / agent_answers, 3) for k, v in agent_commands.most_common(12)},
            "noop_redis_commands_per_task": sum(noop_commands.values()) / noop_all,
            "idle_commands_per_second_subtracted": round(sum(idle.values()), 1),
            **costs,
        }
        self.results["6_memory"] = {
            "answers_after_warmup": answers_after_warmup,
            "rss_mb_after_warmup": [round(b / 2**20, 1) for b in rss_warm],
            "rss_mb_after": [round(b / 2**20, 1) for b in rss_after],
            "growth": sum(rss_after) / sum(rss_warm) - 1,
            "max_process_growth": max(a / w - 1 for a, w in zip(rss_after, rss_warm)),
        }

    # -- scenario 3 -------------------------------------------------------------------------
    def scenario_latency(self) -> None:
        """200 ms provider, 16 workers x 4 queues: answers/s against the ideal 4 x 16 / 0.2 = 320/s."""
        scale = self.scale
        ideal = len(QUEUES) * LATENCY_WORKERS / (LATENCY_MS / 1000)
        agents = self.harness.consumers(workers=LATENCY_WORKERS, latency_ms=LATENCY_MS)
        group_ids, rounds = [], []
        try:
            _, group_id = self.agent_round(LATENCY_WORKERS * 2, agents)  # warm-up: every thread once or twice
            group_ids.append(group_id)
            for _ in range(scale.latency_repeats):
                measured, group_id = self.agent_round(scale.latency_items // len(QUEUES), agents)
                rounds.append(measured)
                group_ids.append(group_id)
            self.groups_closed(group_ids, expected_ok=LATENCY_WORKERS * 2 * len(QUEUES) + sum(r.items for r in rounds))
        finally:
            self.harness.stop(agents)
        rate = statistics.median(r.rate for r in rounds)
        per_queue = scale.latency_items / len(QUEUES)
        self.results["3_latency_efficiency"] = {
            "items": scale.latency_items,
            "repeats": scale.latency_repeats,
            "answers_per_second": rate,
            "ideal_answers_per_second": ideal,
            "efficiency": rate / ideal,
            # Whole waves only: 500 items on 16 workers is 31.25 waves, so even free work ends a partial wave late.
            "wave_bound": (per_queue / LATENCY_WORKERS) / (per_queue // LATENCY_WORKERS + 1),
            "seconds": [round(r.seconds, 3) for r in rounds],
            "cpu_ms_per_answer": statistics.median(r.cpu_seconds / r.items for r in rounds) * 1000,
            "cpu_utilisation": statistics.median(r.cpu_seconds / r.seconds for r in rounds) / (os.cpu_count() or 1),
        }

    # -- scenario 5 -------------------------------------------------------------------------
    def scenario_status(self) -> None:
        """GET /api/runs/{id}/status/ against a trivial authenticated view: same gunicorn, same load generator."""
        import urllib.error
        import urllib.request

        from agent.models import JobGroup
        from tests.redis_server import free_port

        port = free_port()
        server = self.harness.gunicorn(port=port, workers=os.cpu_count() or 1)
        live = JobGroup.objects.filter(status=JobGroup.Status.QUEUED).order_by("-created_at").first()
        done = JobGroup.objects.filter(status=JobGroup.Status.COMPLETED).order_by("-created_at").first()
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Token {self.token}"}

        def get(path: str, headers: dict) -> tuple[int, dict]:
            try:
                with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10) as response:
                    return response.status, dict(response.headers)
            except urllib.error.HTTPError as exc:
                return exc.code, dict(exc.headers)

        targets = {"trivial": ("/bench/trivial/", auth)}
        if live:
            targets["status_live"] = (f"/api/runs/{live.id}/status/", auth)  # pending: read from Redis
        if done:
            targets["status_done"] = (f"/api/runs/{done.id}/status/", auth)  # completed: read from the database
        figures: dict = {}
        try:
            for name, (path, headers) in targets.items():
                code, _ = get(path, headers)
                if code != 200:
                    raise BenchError(f"status scenario: {path} answered {code}")
            etag = get(targets["status_live"][0], auth)[1].get("ETag") if live else None
            if etag:
                code, _ = get(targets["status_live"][0], {**auth, "If-None-Match": etag})
                figures["etag_304"] = code == 304
                if code == 304:
                    targets["status_304"] = (targets["status_live"][0], {**auth, "If-None-Match": etag})
            figures["etag"] = "present" if etag else "missing: the status API sends no ETag, so no 304 can be measured"
            tool = "wrk" if shutil.which("wrk") else "python-threads (wrk not installed)"
            rps: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(self.scale.status_rounds):  # interleaved, so every endpoint sees the same machine
                for name, (path, headers) in targets.items():
                    rps[name].append(load(base + path, headers, seconds=self.scale.status_seconds, tool=tool))
        finally:
            self.harness.stop([server])
        med = {name: statistics.median(values) for name, values in rps.items()}
        figures.update(load_generator=tool, seconds_per_run=self.scale.status_seconds, rounds=self.scale.status_rounds,
                       requests_per_second={k: round(v, 1) for k, v in med.items()})
        for name in ("status_live", "status_done"):
            if name in med:
                figures[f"ratio_{name.removeprefix('status_')}"] = med[name] / med["trivial"]
        if "status_304" in med:
            figures["ratio_304_vs_live"] = med["status_304"] / med["status_live"]
        self.results["5_status_endpoint"] = figures


def job_group_enqueue_naive(*, group) -> None:
    """Scenario 1's baseline: the same progress object, then one LPUSH round trip per item."""
    from agent import progress
    from agent.models import JobItem
    from oneglanse.queues import huey_for, redis_client

    items = list(JobItem.objects.filter(group=group).order_by("id").values_list("id", "provider"))
    pipeline = redis_client().pipeline(transaction=True)
    progress.progress_create_on(pipeline, group, dict(Counter(p for _, p in items)))
    pipeline.execute()
    for item_id, provider in items:
        huey_for(provider).item_run_task(item_id)


def load(url: str, headers: dict, *, seconds: int, tool: str, connections: int = 8) -> float:
    """Requests per second answered 2xx/304 under a bounded closed-loop load on loopback."""
    if tool == "wrk":
        script = Path(os.environ["BENCH_WORKDIR"]) / "headers.lua"
        # Lua long strings: an ETag carries double quotes.
        script.write_text("".join(f'wrk.headers["{k}"] = [==[{v}]==]\n' for k, v in headers.items()))
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                             capture_output=True, text=True, timeout=seconds + 30).stdout
        total = int(re.search(r"(\d+) requests in", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if bad or "Socket errors" in out:
            import urllib.error
            import urllib.request

            try:
                answer = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
                sample = f"{answer.status} {answer.read(300)!r}"
            except urllib.error.HTTPError as exc:
                sample = f"{exc.code} {exc.read(300)!r}"
            raise BenchError(f"load on {url}: errors (a request now answers {sample})\n{out}")
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) if total else 0.0
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    counts = [0] * connections
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.monotonic() < deadline:
            connection.request("GET", parts.path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status not in (200, 304):
                raise BenchError(f"load on {url}: HTTP {response.status}")
            counts[index] += 1
            if response.getheader("Connection", "").lower() == "close":
                connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    return sum(counts) / seconds


# -- report ---------------------------------------------------------------------------------
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
        rows.append(("2 overhead", "agent answers/s / Huey no-op tasks/s", f"{r['ratio']:.3f}", ">= 0.6", r["ratio"] >= 0.6))
        rows.append(("2 overhead", "answers/s, no-op tasks/s (abs.)",
                     f"{r['agent_answers_per_second']:.0f}, {r['noop_tasks_per_second']:.0f}", "info", None))
        rows.append(("2 overhead", "CPU ms per answer / per no-op task (abs.)",
                     f"{r['agent_cpu_ms_per_answer']:.2f} / {r['noop_cpu_ms_per_task']:.3f}", "info", None))
    r = results.get("3_latency_efficiency")
    if r:
        rows.append(("3 latency", f"answers/s / ideal {r['ideal_answers_per_second']:.0f}/s ({r['items']} items)",
                     f"{r['efficiency']:.3f}", ">= 0.9", r["efficiency"] >= 0.9))
        rows.append(("3 latency", "whole-wave bound; CPU use of 2 cores", f"{r['wave_bound']:.3f}; {r['cpu_utilisation']:.2f}",
                     "info", None))
    r = results.get("4_progress_cost")
    if r:
        rows.append(("4 progress", "Redis round trips per answer beyond dequeue",
                     f"{r['round_trips_per_answer_beyond_dequeue']:.2f}", "<= 3", r["round_trips_per_answer_beyond_dequeue"] <= 3))
        rows.append(("4 progress", "  of which Huey's own revoke check / ours",
                     f"{r['of_which_huey_own_per_task']:.2f} / {r['of_which_agent_per_answer']:.2f}", "info", None))
        rows.append(("4 progress", "Redis commands per answer (server; no-op task)",
                     f"{r['redis_commands_per_answer']:.1f} ({r['noop_redis_commands_per_task']:.1f})", "info", None))
        rows.append(("4 progress", "SQL queries per answer", f"{r['sql_queries_per_answer']:.1f}", "info", None))
    r = results.get("5_status_endpoint")
    if r:
        if "ratio_live" in r:
            rows.append(("5 status", "status (live, Redis) req/s / trivial view", f"{r['ratio_live']:.3f}", ">= 0.7",
                         r["ratio_live"] >= 0.7))
        if "ratio_done" in r:
            rows.append(("5 status", "status (finished, DB) req/s / trivial view", f"{r['ratio_done']:.3f}", ">= 0.7",
                         r["ratio_done"] >= 0.7))
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
        rows.append(("7 seed design", "lost updates, seed's read-modify-write", f"{r['seed_lost_updates']} ({r['seed_final_status']})",
                     "info", None))
    return rows


def table(results: dict) -> str:
    rows = [("scenario", "figure", "value", "goal", "met")]
    rows += [(s, f, v, g, {True: "yes", False: "NO", None: ""}[m]) for s, f, v, g, m in goal_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
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
            "python": platform.python_version(), "django": version("django"), "djangorestframework": version("djangorestframework"),
            "huey": version("huey"), "redis-py": version("redis"), "hiredis": version("hiredis"),
            "redis-server": redis_client.info("server")["redis_version"], "sqlite": sqlite3.sqlite_version,
            "gunicorn": version("gunicorn"), "wrk": command_version(["wrk", "-v"]).split(" [")[0],
        },
        "guards": GUARDS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every scenario scaled down, under a minute (CI)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database) for inspection")
    parser.add_argument("--only", help="comma-separated scenario numbers to run, e.g. 1,7 (default: all)")
    options = parser.parse_args()
    only = set(options.only.split(",")) if options.only else set("1234567")

    def terminate(signum, frame):
        raise KeyboardInterrupt  # run every `finally`: no process outlives the benchmark

    signal.signal(signal.SIGTERM, terminate)
    started = time.monotonic()
    scale = QUICK if options.quick else FULL
    with bench_environment(keep=options.keep) as (workdir, redis_server):
        from bench.redis_counter import redis_counter_install

        os.environ["BENCH_WORKDIR"] = str(workdir)
        redis_counter_install(dump=False)  # counts this process's round trips (submit) without a file
        harness = Harness(workdir=workdir, redis_url=redis_server.url, database_url=os.environ["DATABASE_URL"])
        bench = Bench(scale=scale, harness=harness, redis_server=redis_server)
        meta = machine_and_versions(bench.redis, options.quick)
        print(f"{meta['command']}: {meta['machine']}\nguards: {GUARDS}\nwork directory: {workdir}")
        steps = [("1", bench.scenario_submit), ("7", bench.scenario_seed_design),
                 ("246", bench.scenario_zero_latency), ("3", bench.scenario_latency), ("5", bench.scenario_status)]
        try:
            for numbers, step in steps:
                if only & set(numbers):
                    step_started = time.monotonic()
                    print(f"- {step.__doc__.splitlines()[0]}", flush=True)
                    step()
                    print(f"  ({time.monotonic() - step_started:.1f} s)", flush=True)
        except BenchError as exc:
            bench.failures.append(str(exc))
            print(f"!! {exc}\n{harness.log_tail()}", file=sys.stderr)
        finally:
            harness.close()
    meta["seconds"] = round(time.monotonic() - started, 1)
    output = {"meta": meta, **bench.results, "failures": bench.failures}
    RESULTS_PATH.write_text(json.dumps(output, indent=2, default=str) + "\n")
    print(f"\n{table(bench.results)}\n\n{meta['seconds']} s; figures in {RESULTS_PATH.relative_to(PROJECT_DIR)}")
    if bench.failures:
        print("FAILED:\n  " + "\n  ".join(bench.failures))
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
