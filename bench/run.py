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
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from a fresh clone

from bench.environment import PROJECT_DIR, bench_environment
from bench.harness import QUEUES, BenchError, Harness, cpu_seconds, deadline_wait, rss_bytes
from bench.load import load
from bench.report import GUARDS, machine_and_versions, table

RESULTS_PATH = PROJECT_DIR / "bench" / "results.json"


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
    schedules: int = 1000  # scenario 8: schedules due in the same minute
    analysis_prompts: int = 250  # scenario 2, analysis on / off: x 4 providers per round
    analysis_rounds: int = 10  # each: consumers with analysis and consumers without, in turn first


FULL = Scale(submit_prompts=1000, submit_repeats=5, seed_prompts=1000, seed_threads=16, workers=4, warmup_prompts=1000,
             overhead_prompts=1000, overhead_rounds=3, noop_per_queue=4000, memory_items=20000, latency_items=2000,
             latency_repeats=3, status_seconds=4, status_rounds=3)
QUICK = Scale(submit_prompts=100, submit_repeats=3, seed_prompts=200, seed_threads=16, workers=4, warmup_prompts=50,
              overhead_prompts=250, overhead_rounds=1, noop_per_queue=1000, memory_items=1000, latency_items=320,
              latency_repeats=1, status_seconds=1, status_rounds=1, schedules=100, analysis_prompts=60,
              analysis_rounds=1)
LATENCY_MS, LATENCY_WORKERS = 200, 16


@dataclass(frozen=True)
class Round:
    items: int
    seconds: float
    cpu_seconds: float  # consumers + redis-server
    foreign_cores: float  # CPU that other processes on this shared machine used meanwhile

    @property
    def rate(self) -> float:
        return self.items / self.seconds


class Meter:
    """Wall time, CPU of the processes under test, and what the rest of the machine used meanwhile."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.started = time.perf_counter()
        self.cpu = cpu_seconds(pids)
        self.own = own_cpu_seconds()
        self.machine = machine_busy_seconds()

    def round(self, items: int) -> Round:
        seconds = time.perf_counter() - self.started
        cpu = cpu_seconds(self.pids) - self.cpu
        foreign = machine_busy_seconds() - self.machine - cpu - (own_cpu_seconds() - self.own)
        return Round(items, seconds, cpu, max(0.0, foreign / seconds))


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


class Bench:
    """The scenarios: each method runs one (or, for 2/4/6, three sharing consumers) and fills `results`."""

    def __init__(self, *, scale: Scale, harness: Harness, redis_server, proposals: bool = False) -> None:
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        from agent.connections import redis_client

        self.scale, self.harness, self.redis_server = scale, harness, redis_server
        # --proposals: agent consumers and the web server run the prototyped core changes.
        self.agent_settings = "bench.proposals_settings" if proposals else None
        self.redis = redis_client()
        self.user = get_user_model().objects.create_user(username="bench", password="bench-password-not-secret")
        self.token = Token.objects.create(user=self.user).key
        self.workspaces: dict[int, object] = {}
        self.parked: list = []
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
                [Prompt(workspace=workspace, text=f"What are the best CRM tools for team {n} of {prompts}?")
                 for n in range(prompts)]
            )
            self.workspaces[prompts] = workspace
        return self.workspaces[prompts]

    def queue_keys(self) -> list[str]:
        from agent.queues import huey_for

        return [huey_for(p).storage.queue_key for p in QUEUES]

    def branded_workspace(self, prompts: int):
        """A workspace like `workspace(prompts)` that also tracks five brands, which the simulated
        provider names and cites at its usual rates: the answers the analysis of scenario 2 reads."""
        key = ("branded", prompts)
        if key not in self.workspaces:
            from prompts.models import Prompt
            from visibility.services.brands import brand_create
            from workspaces.services import workspace_create

            workspace = workspace_create(user=self.user, name=f"Bench brands {prompts}", enabled_providers=list(QUEUES))
            Prompt.objects.bulk_create(
                [Prompt(workspace=workspace, text=f"Which CRM should team {n} of {prompts} pick?") for n in range(prompts)]
            )
            for name, domain, is_own in (("Acme CRM", "acme.example", True), ("Pipedrive", "pipedrive.com", False),
                                         ("HubSpot", "hubspot.com", False), ("Salesforce", "salesforce.com", False),
                                         ("Zoho CRM", "zoho.com", False)):
                brand_create(workspace=workspace, name=name, domains=[domain], is_own=is_own)
            self.workspaces[key] = workspace
        return self.workspaces[key]

    def submit(self, prompts: int, workspace=None):
        from agent.services.submit import job_group_submit

        return job_group_submit(workspace=workspace or self.workspace(prompts), user=self.user).job_group

    def submit_parked(self, prompts: int):
        """A group that no consumer runs: its queue entries go, and it is cancelled by park_all()."""
        group = self.submit(prompts)
        self.redis.delete(*self.queue_keys())
        self.parked.append(group)
        return group

    def park_all(self) -> None:
        """Cancel (the real service) every group submitted only to be timed or counted, so the
        consumers' recovery sweep never finds them overdue and pushes them back mid-measurement."""
        from agent.models import JobGroup
        from agent.services.closing import job_group_cancel

        self.redis.delete(*self.queue_keys())
        for group in self.parked:
            group.refresh_from_db()
            if group.status in JobGroup.UNFINISHED:
                job_group_cancel(group=group)
        self.parked.clear()

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)
            print(f"  !! {message}")

    # -- rounds -----------------------------------------------------------------------------
    def agent_round(self, prompts: int, consumers, *, workspace=None, with_redis: bool = True,
                    settled=None) -> tuple[Round, str]:
        """Submit a group and time it until every item is finished in the database (and, with
        `settled`, until settled(group_id) is true as well)."""
        from agent.models import JobItem

        group = self.submit(prompts, workspace)
        meter = Meter([p.pid for p in consumers] + ([self.redis_server.process.pid] if with_redis else []))
        unfinished = JobItem.objects.filter(group_id=group.id, status__in=JobItem.UNFINISHED)
        n = group.expected_responses
        try:
            deadline_wait(lambda: not unfinished.exists(), timeout=60 + n / 10, what=f"group of {n} items", alive=consumers)
        except BenchError as exc:
            states = dict(Counter(JobItem.objects.filter(group_id=group.id).values_list("status", flat=True)))
            queued = {key: self.redis.zcard(key) for key in self.queue_keys()}
            raise BenchError(f"{exc}; items by status {states}; queue lengths {queued}") from None
        if settled is not None:
            deadline_wait(lambda: settled(group.id), timeout=60, what=f"group of {n} items settled", interval=0.02,
                          alive=consumers)
        return meter.round(n), str(group.id)

    def bare_round(self, prompts: int, consumers) -> Round:
        """The same group's items answered by the bare Huey task (bench/bare_consumer.py); timed like agent_round."""
        from datetime import timedelta

        from django.utils import timezone

        from agent.models import JobItem
        from agent.services.submit import job_group_submit
        from bench.bare_consumer import bare_huey

        # A run scheduled for tomorrow: its rows exactly as any submit writes them, nothing on the
        # agent's queues; the bare tasks below answer its items instead.
        group = job_group_submit(workspace=self.workspace(prompts), user=self.user,
                                 run_at=timezone.now() + timedelta(days=1)).job_group
        by_queue: dict[str, list[int]] = {queue: [] for queue in QUEUES}
        for item_id, provider in JobItem.objects.filter(group=group).order_by("id").values_list("id", "provider"):
            by_queue[provider].append(item_id)
        pipeline = self.redis.pipeline(transaction=False)
        for queue, item_ids in by_queue.items():
            huey = bare_huey(queue)
            huey.storage.enqueue_many_on(pipeline, [huey.serialize_task(huey.answer_task.s(i)) for i in item_ids])
        pipeline.execute()
        meter = Meter([p.pid for p in consumers] + [self.redis_server.process.pid])
        unfinished = JobItem.objects.filter(group_id=group.id, status__in=JobItem.UNFINISHED)
        n = group.expected_responses
        deadline_wait(lambda: not unfinished.exists(), timeout=60 + n / 10, what=f"bare group of {n} items", alive=consumers)
        measured = meter.round(n)
        self.parked.append(group)  # never closed by a consumer: park_all closes it
        return measured

    def noop_round(self, per_queue: int, consumers) -> Round:
        """Push `per_queue` no-op tasks (+ a marker) on each no-op queue; time until every marker ran."""
        from bench.noop_consumer import NOOP_DONE_KEY, noop_huey

        self.redis.delete(NOOP_DONE_KEY)
        pipeline = self.redis.pipeline(transaction=False)
        for queue in QUEUES:
            huey = noop_huey(queue)
            messages = [huey.serialize_task(huey.noop_task.s()) for _ in range(per_queue)]
            huey.storage.enqueue_many_on(pipeline, [*messages, huey.serialize_task(huey.marker_task.s())])
        pipeline.execute()
        meter = Meter([p.pid for p in consumers] + [self.redis_server.process.pid])
        deadline_wait(lambda: self.redis.llen(NOOP_DONE_KEY) >= len(QUEUES), timeout=60 + per_queue / 50,
                      what="no-op batch", alive=consumers)
        return meter.round(per_queue * len(QUEUES))

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

        import agent.services.submit
        from agent.models import JobGroup
        from bench.redis_counter import redis_counter_snapshot

        scale = self.scale
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        workspace = self.workspace(scale.submit_prompts)
        expected = scale.submit_prompts * len(QUEUES)
        bulk = agent.services.submit.job_group_enqueue
        enqueue_seconds: list[float] = []

        def timed(enqueue):
            def wrapper(*, group):
                started = time.perf_counter()
                try:
                    return enqueue(group=group)
                finally:
                    enqueue_seconds.append(time.perf_counter() - started)
            return wrapper

        def once(enqueue, *, count_queries: bool = False) -> tuple[float, float, int]:
            self.redis.delete(*self.queue_keys())
            agent.services.submit.job_group_enqueue = timed(enqueue)
            round_trips = sum(redis_counter_snapshot().values())
            # Only untimed calls count queries: the debug cursor formats every bulk INSERT's SQL.
            capture = CaptureQueriesContext(connection) if count_queries else contextlib.nullcontext()
            try:
                with capture:
                    started = time.perf_counter()
                    response = client.post(f"/api/workspaces/{workspace.id}/runs/")
                    pipeline = self.redis.pipeline(transaction=False)
                    for key in self.queue_keys():
                        pipeline.zcard(key)
                    queued = sum(pipeline.execute())
                    elapsed = time.perf_counter() - started
            finally:
                agent.services.submit.job_group_enqueue = bulk
            if response.status_code != 202 or queued != expected:
                raise BenchError(
                    f"submit: HTTP {response.status_code}, {queued} of {expected} items queued: {response.content[:300]}"
                )
            self.parked.append(JobGroup.objects.get(id=response.json()["jobGroupId"]))
            if count_queries:
                sql_queries[enqueue] = len(capture)
            round_trips = sum(redis_counter_snapshot().values()) - round_trips - 1  # less our ZCARD pipeline
            return elapsed, enqueue_seconds[-1], round_trips

        sql_queries: dict = {}
        # Warm-up (URL resolver, imports, SQLite cache), counting the queries of each kind.
        once(bulk, count_queries=True), once(job_group_enqueue_naive, count_queries=True)
        runs = {"bulk": [], "naive": []}
        for _ in range(scale.submit_repeats):  # interleaved, so both see the same machine
            runs["bulk"].append(once(bulk))
            runs["naive"].append(once(job_group_enqueue_naive))
        self.redis.delete(*self.queue_keys())  # no consumer is to run these groups
        med = {name: [statistics.median(r[i] for r in rs) for i in range(3)] for name, rs in runs.items()}
        self.results["1_submit"] = {
            "items": expected,
            "repeats": scale.submit_repeats,
            "median_seconds": med["bulk"][0],
            "naive_median_seconds": med["naive"][0],
            "speedup_vs_naive": med["naive"][0] / med["bulk"][0],
            "enqueue_only_seconds": med["bulk"][1],
            "naive_enqueue_only_seconds": med["naive"][1],
            "enqueue_only_speedup_vs_naive": med["naive"][1] / med["bulk"][1],
            "sql_queries_per_submit": sql_queries[bulk],
            "redis_round_trips_per_submit": med["bulk"][2],
            "naive_redis_round_trips_per_submit": med["naive"][2],
        }

    # -- scenario 7 -------------------------------------------------------------------------
    def scenario_seed_design(self) -> None:
        """Many threads count the same group's items: the seed's read-modify-write against agent.progress."""
        from agent import progress
        from agent.models import JobItem
        from bench.seed_progress import seed_progress_create, seed_progress_item_finished, seed_progress_read

        group = self.submit_parked(self.scale.seed_prompts)  # the threads below count its items, no consumer does
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

    # -- scenario 8 -------------------------------------------------------------------------
    def scenario_metrics_cost(self) -> None:
        """What the cluster metrics cost per answer: the counting script with and without metering."""
        from agent import metrics, progress, progress_lua
        from agent.models import JobItem
        from bench.redis_counter import redis_counter_snapshot

        scripts = progress._scripts.bind()
        metered = scripts.finish
        # "Before": the same script with an empty meter(), i.e. the progress count alone.
        unmetered = scripts._client.register_script(
            progress_lua.SETTLE_LUA + metrics.METER_LUA_DISABLED + progress_lua.FINISH_BODY)

        def one_round(script) -> dict:
            group = self.submit_parked(self.scale.seed_prompts // 4)
            items = list(JobItem.objects.filter(group=group).values_list("id", "provider"))
            scripts.finish = script
            self.redis.config_resetstat()
            trips = sum(redis_counter_snapshot().values())
            started = time.process_time()
            try:
                for item_id, provider in items:
                    progress.progress_item_finished(group_id=group.id, item_id=item_id, provider=provider,
                                                    status=JobItem.Status.OK, latency_ms=420)
            finally:
                scripts.finish = metered
            cpu = time.process_time() - started
            stats = self.redis.info("commandstats").get("cmdstat_evalsha", {"usec": 0, "calls": 1})
            return {"round_trips": (sum(redis_counter_snapshot().values()) - trips) / len(items),
                    "client_cpu_us": cpu / len(items) * 1e6, "server_us": stats["usec"] / max(1, stats["calls"])}

        rounds = {"before": [], "after": []}
        for _ in range(3):  # interleaved, so drift on a shared machine hits both alike
            rounds["before"].append(one_round(unmetered))
            rounds["after"].append(one_round(metered))
        figures = {
            phase: {k: statistics.median(r[k] for r in runs) for k in ("round_trips", "client_cpu_us", "server_us")}
            for phase, runs in rounds.items()
        }
        before, after = figures["before"], figures["after"]
        self.results["8_metrics_cost"] = {
            "answers_per_round": self.scale.seed_prompts // 4 * len(QUEUES),
            "round_trips_per_answer_before": before["round_trips"],
            "round_trips_per_answer_after": after["round_trips"],
            "client_cpu_us_per_answer_before": round(before["client_cpu_us"], 1),
            "client_cpu_us_per_answer_after": round(after["client_cpu_us"], 1),
            "redis_server_us_per_answer_before": round(before["server_us"], 1),
            "redis_server_us_per_answer_after": round(after["server_us"], 1),
            "extra_cpu_us_per_answer": round(after["client_cpu_us"] + after["server_us"]
                                             - before["client_cpu_us"] - before["server_us"], 1),
        }
        self.check(after["round_trips"] == before["round_trips"],
                   f"metering added round trips per answer: {before['round_trips']} -> {after['round_trips']}")

    # -- in-process costs of one answer (part of scenario 4) ---------------------------------
    def answer_costs_in_process(self, prompts: int = 10) -> dict:
        """SQL queries and Redis round trips of item_run, run here with a 0 ms provider (no Huey)."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from agent.models import JobItem
        from agent.services.items import item_run
        from agent.tasks import QueuedItem
        from bench.redis_counter import redis_counter_snapshot

        group = self.submit_parked(prompts)
        items = [QueuedItem.of(item) for item in JobItem.objects.filter(group=group)]
        round_trips = sum(redis_counter_snapshot().values())
        with CaptureQueriesContext(connection) as queries:
            for item in items:
                item_run(item=item)
        round_trips = sum(redis_counter_snapshot().values()) - round_trips
        statements = Counter(q["sql"].split()[0].upper() for q in queries.captured_queries)

        # The floor of an answer's CPU: the statements no design can skip (read the item, mark it
        # running, write the answer), each as the ORM runs it, here in one thread.
        def cpu_ms(statement, repeats: int = 300) -> float:
            started = time.process_time()
            for index in range(repeats):
                statement(items[index % len(items)].item_id)
            return (time.process_time() - started) / repeats * 1000

        now = timezone.now()
        select_ms = cpu_ms(lambda item_id: JobItem.objects.filter(id=item_id).values(
            "group_id", "provider", "prompt_text", "status").first())
        update_ms = cpu_ms(lambda item_id: JobItem.objects.filter(id=item_id, status__in=JobItem.FINISHED).update(
            heartbeat_at=now, finished_at=now))
        return {
            "orm_select_cpu_ms": select_ms,
            "orm_update_cpu_ms": update_ms,
            "db_floor_cpu_ms_per_answer": select_ms + 2 * update_ms,
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
        for command in ("info", "config", "llen", "zcard"):  # the benchmark's own
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
        self.park_all()
        harness = self.harness
        counted = "bench.instrumented_settings"
        agents = harness.consumers(workers=scale.workers, latency_ms=0, settings=self.agent_settings or counted)
        noops = harness.consumers(workers=scale.workers, latency_ms=0, noop=True, settings=counted)
        bares = harness.consumers(workers=scale.workers, latency_ms=0, bare=True, settings=counted)
        everyone = agents + noops + bares
        try:
            # Warm-up: every worker thread opens its connections and every module is imported.
            warm, warm_group = self.agent_round(scale.warmup_prompts, everyone)
            self.noop_round(scale.noop_per_queue // 4, everyone)
            self.bare_round(scale.warmup_prompts, everyone)
            group_ids = [warm_group]
            time.sleep(1.2)  # two counter dumps: the snapshots below are current
            rss_warm = rss_bytes(agents)
            agent_pids, noop_pids = {p.pid for p in agents}, {p.pid for p in noops}
            agent_counts0 = redis_counter_read(harness.counter_dir, agent_pids)
            noop_counts0 = redis_counter_read(harness.counter_dir, noop_pids)

            idle = self.idle_commands_per_second()
            agent_rounds, noop_rounds, bare_rounds = [], [], []
            agent_commands, noop_commands = Counter(), Counter()
            for _round in range(scale.overhead_rounds):
                commands, (agent_round, group_id) = self.commands_during(
                    lambda: self.agent_round(scale.overhead_prompts, everyone), idle)
                agent_rounds.append(agent_round)
                group_ids.append(group_id)
                agent_commands += commands
                commands, noop_round = self.commands_during(lambda: self.noop_round(scale.noop_per_queue, everyone), idle)
                noop_rounds.append(noop_round)
                noop_commands += commands
                bare_rounds.append(self.bare_round(scale.overhead_prompts, everyone))
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
        bare_rate = statistics.median(r.rate for r in bare_rounds)
        bare_cpu = statistics.median(r.cpu_seconds / r.items for r in bare_rounds)
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
            # Even an answer that cost only its 3 unavoidable ORM statements could not go faster than this.
            "ratio_bound_from_db_floor": noop_cpu * 1000 / (noop_cpu * 1000 + costs["db_floor_cpu_ms_per_answer"]),
            # The goal: an answer costs little more CPU than a bare Huey task doing the same statements.
            "bare_cpu_ms_per_answer": bare_cpu * 1000,
            "bare_answers_per_second": bare_rate,
            "bare_vs_ours_cpu": bare_cpu / agent_cpu,
            "ours_vs_bare_rate": agent_rate / bare_rate,
            "bare_cpu_utilisation": statistics.median(r.cpu_seconds / r.seconds for r in bare_rounds) / cores,
            "agent_cpu_utilisation": statistics.median(r.cpu_seconds / r.seconds for r in agent_rounds) / cores,
            "noop_cpu_utilisation": statistics.median(r.cpu_seconds / r.seconds for r in noop_rounds) / cores,
            "foreign_cpu_cores": statistics.median(r.foreign_cores for r in agent_rounds + noop_rounds + bare_rounds),
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

        agent_answers = sum(r.items for r in agent_rounds)
        noop_all = sum(r.items for r in noop_rounds) + len(QUEUES) * scale.overhead_rounds
        agent_task = per_item(agent_counts, agent_answers, "task")
        noop_task = per_item(noop_counts, noop_all, "task")
        # Outside the tasks: the dequeue (BRPOP) and Huey's scheduler poll are the queue's own;
        # the rest (recovery sweep, heartbeats, health checks) is ours and counts per answer too.
        queue_own = {"BRPOP", "BZPOPMIN", "EVALSHA storage.SCHEDULE_POP_LUA"}  # BZPOPMIN: the priority queues
        agent_loop = per_item(agent_counts, agent_answers, "loop")
        background = {k: v for k, v in agent_loop.items() if k not in queue_own}
        beyond_dequeue = sum(agent_task.values()) + sum(background.values())
        self.results["4_progress_cost"] = {
            "answers": agent_answers,
            "tasks_executed": agent_counts["loop:TASKS-EXECUTED"],
            "round_trips_per_answer_beyond_dequeue": beyond_dequeue,
            "of_which_huey_own_per_task": sum(noop_task.values()),
            "of_which_agent_per_answer": beyond_dequeue - sum(noop_task.values()),
            "round_trips_by_command_per_answer": agent_task,
            "background_round_trips_per_answer": background,
            "huey_noop_round_trips_by_command_per_task": noop_task,
            "dequeue_round_trips_per_answer": {k: v for k, v in agent_loop.items() if k in queue_own},
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
            "max_process_growth": max(a / w - 1 for a, w in zip(rss_after, rss_warm, strict=True)),
        }

    # -- scenario 2, analysis cost ------------------------------------------------------------
    def scenario_analysis_cost(self) -> None:
        """Analysis cost (2): consumer CPU per answer with the analysis of each answer on and off."""
        from django.utils import timezone

        from agent.models import JobGroup, JobItem
        from visibility.models import RunStat
        from visibility.services.analysis import FINDINGS_KEY
        from visibility.services.sweep import FIGURES_GRACE, visibility_sweep

        def closed(group_id) -> bool:
            return JobGroup.objects.filter(id=group_id, status=JobGroup.Status.COMPLETED).exists()

        def figures_written(group_id) -> bool:
            return closed(group_id) and RunStat.objects.filter(group_id=group_id).exists()

        scale = self.scale
        workspace = self.branded_workspace(scale.analysis_prompts)
        # What the product consumers' visibility sweep would otherwise do during the first measured
        # round, for work that is not this scenario's: the new brands' re-analysis, and figures of
        # the runs earlier scenarios parked (cancelled without any). Done here, by the same service.
        visibility_sweep(now=timezone.now() + FIGURES_GRACE)
        # The product's consumers, and the same ones with the visibility receivers disconnected. Each
        # round is measured until its run is closed and, with the analysis, its figures are written.
        settings = {"on": self.agent_settings or "bench.settings", "off": "bench.analysis_off_settings"}
        rounds: dict[str, list[Round]] = {"on": [], "off": []}
        ok, analysed, mentioned = Counter(), Counter(), 0
        for round_number in range(scale.analysis_rounds):
            # Alternated, so a change of the machine's load meets both alike, and in turn first (on, off,
            # then off, on...): with the same consumers in both places, the first of a pair measured a
            # few per cent lower than the second.
            for mode in ("on", "off") if round_number % 2 == 0 else ("off", "on"):
                consumers = self.harness.consumers(workers=scale.workers, latency_ms=0, settings=settings[mode])
                try:
                    # Warm-up: imports, connections, the matcher and run caches; not measured.
                    settled = figures_written if mode == "on" else closed
                    _, warm_group = self.agent_round(max(5, scale.analysis_prompts // 10), consumers, workspace=workspace,
                                                     settled=settled)
                    measured, group_id = self.agent_round(scale.analysis_prompts, consumers, workspace=workspace,
                                                          with_redis=False, settled=settled)
                    rounds[mode].append(measured)
                finally:
                    self.harness.stop(consumers)
                ids = [warm_group, group_id]
                ok[mode] += JobItem.objects.filter(group_id__in=ids, status=JobItem.Status.OK).count()
                findings = [
                    stored[FINDINGS_KEY] for stored in JobItem.objects.filter(
                        group_id__in=ids, status=JobItem.Status.OK).values_list("findings", flat=True)
                    if stored and FINDINGS_KEY in stored
                ]
                analysed[mode] += len(findings)
                if mode == "on":
                    mentioned += sum(1 for found in findings for _, mentions, *_ in found["brands"] if mentions)
                else:
                    # Counted, then gone: the product consumers' sweep would otherwise find these runs
                    # without figures (a minute after they closed) and analyse them during a later round "on".
                    JobGroup.objects.filter(id__in=ids).delete()
        self.check(analysed["on"] == ok["on"], f"analysis on: {analysed['on']} of {ok['on']} ok answers analysed")
        self.check(analysed["off"] == 0, f"analysis off: {analysed['off']} answers analysed all the same")
        on_cpu = statistics.median(r.cpu_seconds / r.items for r in rounds["on"])
        off_cpu = statistics.median(r.cpu_seconds / r.items for r in rounds["off"])
        self.results["2_analysis_cost"] = {
            "workers_per_queue": scale.workers,
            "rounds": scale.analysis_rounds,
            "answers_per_round": rounds["on"][0].items,
            "brands": 5,
            "cpu_ms_per_answer_analysis_on": on_cpu * 1000,
            "cpu_ms_per_answer_analysis_off": off_cpu * 1000,
            "cpu_ms_per_answer_on_by_round": [round(r.cpu_seconds / r.items * 1000, 3) for r in rounds["on"]],
            "cpu_ms_per_answer_off_by_round": [round(r.cpu_seconds / r.items * 1000, 3) for r in rounds["off"]],
            "analysis_cpu_share": on_cpu / off_cpu - 1,
            # Two other estimators of the same rounds, for judging the figure's spread: all the CPU
            # with ÷ all without, and the median of the pairs' own ratios.
            "analysis_cpu_share_of_totals": (sum(r.cpu_seconds for r in rounds["on"])
                                             / sum(r.cpu_seconds for r in rounds["off"]) - 1),
            "analysis_cpu_share_median_of_pairs": statistics.median(
                on.cpu_seconds / off.cpu_seconds for on, off in zip(rounds["on"], rounds["off"], strict=True)) - 1,
            "mentioned_brands_per_answer": mentioned / max(1, ok["on"]),
            "foreign_cpu_cores": statistics.median(r.foreign_cores for r in rounds["on"] + rounds["off"]),
        }

    # -- scenario 3 -------------------------------------------------------------------------
    def scenario_latency(self) -> None:
        """200 ms provider, 16 workers x 4 queues: answers/s against the ideal 4 x 16 / 0.2 = 320/s."""
        scale = self.scale
        ideal = len(QUEUES) * LATENCY_WORKERS / (LATENCY_MS / 1000)
        agents = self.harness.consumers(workers=LATENCY_WORKERS, latency_ms=LATENCY_MS,
                                        settings=self.agent_settings or "bench.settings")
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
            "foreign_cpu_cores": statistics.median(r.foreign_cores for r in rounds),
            "cores_needed_at_ideal": statistics.median(r.cpu_seconds / r.items for r in rounds) * ideal,
        }

    # -- scenario 5 -------------------------------------------------------------------------
    def scenario_schedules(self) -> None:
        """Schedules due in the same minute (06:00 UTC) fire within 30 s, each exactly once."""
        from bench.schedules import scenario_schedules

        self.results["9_schedules"] = scenario_schedules(self, schedules=self.scale.schedules)

    def scenario_status(self) -> None:
        """GET /api/runs/{id}/status/ against a trivial authenticated view: same gunicorn, same load generator."""
        import urllib.error
        import urllib.request

        from agent.models import JobGroup
        from tests.redis_server import free_port

        port = free_port()
        workers = 2 * (os.cpu_count() or 1) + 1  # gunicorn's advice; a worker idles while it waits on Redis
        server = self.harness.gunicorn(port=port, workers=workers, settings=self.agent_settings or "bench.settings")
        live = self.submit_parked(10)  # pending, so its status is read from the live Redis object
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
            for path, headers in targets.values():
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
            # BENCH_LOAD=python forces the fallback, to check it still works where wrk is missing.
            use_wrk = shutil.which("wrk") and os.environ.get("BENCH_LOAD") != "python"
            tool = "wrk" if use_wrk else "python-threads (wrk not installed or BENCH_LOAD=python)"
            rps: dict[str, list[float]] = {name: [] for name in targets}
            cpu_ms: dict[str, list[float]] = {name: [] for name in targets}
            # Server CPU per request (gunicorn workers + redis-server) is the steadier figure when
            # other work loads the machine; requests per second is what a user sees.
            server_pids = [p.pid for p in psutil.Process(server.pid).children()] + [self.redis_server.process.pid]
            seconds = self.scale.status_seconds
            names = list(targets)
            for index in range(self.scale.status_rounds):
                # Interleaved and rotated, so every endpoint sees the same machine and each takes every
                # place in a round (closed loopback connections pile up over a round).
                for name in names[index % len(names):] + names[:index % len(names)]:
                    path, headers = targets[name]
                    cpu = cpu_seconds(server_pids)
                    rps[name].append(load(base + path, headers, seconds=seconds, tool=tool))
                    cpu_ms[name].append((cpu_seconds(server_pids) - cpu) * 1000 / max(1.0, rps[name][-1] * seconds))
        finally:
            self.harness.stop([server])
        med = {name: statistics.median(values) for name, values in rps.items()}
        cpu = {name: statistics.median(values) for name, values in cpu_ms.items()}
        figures.update(load_generator=tool, gunicorn_workers=f"{workers} gthread x 1 thread, keep-alive",
                       seconds_per_run=self.scale.status_seconds,
                       rounds=self.scale.status_rounds, requests_per_second={k: round(v, 1) for k, v in med.items()},
                       server_cpu_ms_per_request={k: round(v, 3) for k, v in cpu.items()})
        for name in ("status_live", "status_done"):
            if name in med:
                figures[f"ratio_{name.removeprefix('status_')}"] = med[name] / med["trivial"]
                figures[f"cpu_ratio_{name.removeprefix('status_')}"] = cpu["trivial"] / cpu[name]
        if "status_304" in med:
            figures["ratio_304_vs_live"] = med["status_304"] / med["status_live"]
        self.results["5_status_endpoint"] = figures


def job_group_enqueue_naive(*, group) -> None:
    """Scenario 1's baseline: the same progress object, then one LPUSH round trip per item."""
    from agent import progress
    from agent.connections import redis_client
    from agent.models import JobItem
    from agent.tasks import QueuedItem, item_run_task

    items = list(JobItem.objects.filter(group=group).order_by("id").values_list("id", "provider"))
    pipeline = redis_client().pipeline(transaction=True)
    progress.progress_create_on(pipeline, group, dict(Counter(p for _, p in items)))
    pipeline.execute()
    for item_id, provider in items:
        item_run_task(provider)(QueuedItem(item_id, str(group.id), provider))


LARGE_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/oneglanse_bench_large"


def large_main(options) -> int:
    """`--large`: bench/large.py's two worlds, each in its own process; figures merged into bench/results-large.json."""
    import subprocess

    from bench.report import large_table

    started = time.monotonic()
    results: dict = {}
    failures: list[str] = []
    worlds = [("runs", []), ("data", ["--database-url", options.database_url])]
    for world, extra in worlds:
        argv = [sys.executable, str(PROJECT_DIR / "bench" / "large.py"), "--world", world, *extra]
        if options.keep:
            argv.append("--keep")
        if options.only:
            argv += ["--only", options.only]
        print(f"== {world}: {' '.join(argv[1:])}", flush=True)
        world_started = time.monotonic()
        process = subprocess.run(argv, cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
        lines = process.stdout.strip().splitlines()
        print("\n".join(lines[:-1]))
        if process.returncode != 0 or not lines or not lines[-1].startswith("{"):
            failures.append(f"large world {world!r} exited with {process.returncode}")
            continue
        results[world] = {**json.loads(lines[-1]), "world_seconds": round(time.monotonic() - world_started, 1)}
    meta = {"command": "python bench/run.py --large", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "seconds": round(time.monotonic() - started, 1)}
    path = RESULTS_PATH.with_name("results-large.json")
    path.write_text(json.dumps({"meta": meta, **results, "failures": failures}, indent=2, default=str) + "\n")
    print(f"\n{large_table(results)}\n\n{meta['seconds']} s; figures in {path.relative_to(PROJECT_DIR)}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every scenario scaled down, under a minute (CI)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database) for inspection")
    parser.add_argument("--only", help="comma-separated scenario numbers to run, e.g. 1,7 (default: all)")
    parser.add_argument("--proposals", action="store_true",
                        help="run the prototyped core changes of bench/proposals.py (writes bench/results-proposals.json)")
    parser.add_argument("--large", action="store_true",
                        help="the large scenarios instead (bench/large.py: a year of data on PostgreSQL, big runs, "
                             "slow providers; not in CI), into bench/results-large.json")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_LARGE_DATABASE_URL", LARGE_DATABASE_URL),
                        help=f"PostgreSQL database the large data scenarios create and drop (default {LARGE_DATABASE_URL})")
    options = parser.parse_args()
    if options.large:
        return large_main(options)
    only = set(options.only.split(",")) if options.only else set("123456789")

    def terminate(signum, frame):
        raise KeyboardInterrupt  # run every `finally`: no process outlives the benchmark

    signal.signal(signal.SIGTERM, terminate)
    started = time.monotonic()
    scale = QUICK if options.quick else FULL
    with bench_environment(keep=options.keep) as (workdir, redis_server):
        from bench.redis_counter import redis_counter_install

        os.environ["BENCH_WORKDIR"] = str(workdir)
        redis_counter_install(dump=False)  # counts this process's round trips (submit) without a file
        if options.proposals:
            from bench.proposals import PROPOSALS, proposals_apply

            proposals_apply()
        harness = Harness(workdir=workdir, redis_url=redis_server.url, database_url=os.environ["DATABASE_URL"])
        bench = Bench(scale=scale, harness=harness, redis_server=redis_server, proposals=options.proposals)
        meta = machine_and_versions(bench.redis, options.quick)
        if options.proposals:
            meta["command"] += " --proposals"
            meta["proposals"] = PROPOSALS
            print("WITH THE PROTOTYPED CORE CHANGES (bench/proposals.py), NOT THE SHIPPED CODE:\n  "
                  + "\n  ".join(f"{k}: {v}" for k, v in PROPOSALS.items()))
        print(f"{meta['command']}: {meta['machine']}\nguards: {GUARDS}\nwork directory: {workdir}")
        steps = [("1", bench.scenario_submit), ("7", bench.scenario_seed_design), ("8", bench.scenario_metrics_cost),
                 ("246", bench.scenario_zero_latency), ("2", bench.scenario_analysis_cost),
                 ("3", bench.scenario_latency), ("5", bench.scenario_status),
                 ("9", bench.scenario_schedules)]
        try:
            for numbers, step in steps:
                if only & set(numbers):
                    step_started = time.monotonic()
                    print(f"- {step.__doc__.splitlines()[0]}", flush=True)
                    try:
                        step()
                    except BenchError as exc:  # recorded; the other scenarios still run
                        bench.failures.append(str(exc))
                        print(f"!! {exc}\n{harness.log_tail()}", file=sys.stderr)
                    bench.park_all()
                    print(f"  ({time.monotonic() - step_started:.1f} s)", flush=True)
        finally:
            harness.close()
    meta["seconds"] = round(time.monotonic() - started, 1)
    output = {"meta": meta, **bench.results, "failures": bench.failures}
    path = RESULTS_PATH.with_name("results-proposals.json") if options.proposals else RESULTS_PATH
    path.write_text(json.dumps(output, indent=2, default=str) + "\n")
    print(f"\n{table(bench.results)}\n\n{meta['seconds']} s; figures in {path.relative_to(PROJECT_DIR)}")
    if bench.failures:
        print("FAILED:\n  " + "\n  ".join(bench.failures))
    return 1 if bench.failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started is stopped", file=sys.stderr)
        sys.exit(130)
