"""The large scenarios (`bench/run.py --large`, not in CI): a year of data, big runs, slow providers.

Two worlds, each in its own process (Django binds one database per process):
- `--world data`: a PostgreSQL database (created, filled by `manage.py bench_fixture`, dropped at
  the end unless kept): the answers API at page 1 and page 5,000, the CSV export of a
  100,000-answer run (peak RSS of a gunicorn worker), the admin run list and item list, and the
  workspace page, run page and status endpoint with their query plans (EXPLAIN ANALYZE).
  With `--filler`: L1, L3 and L4 on the year alone, then again after other tenants' 9,950,000
  answers in 199 workspaces are added, side by side, with both sets of plans in
  bench/plans-filler.txt (L7).
- `--world runs`: SQLite and real consumers: submitting 10,000 prompts x 4 providers, and
  1,000 provider calls in flight at 10 s each on one host (4 queues x 250 worker threads).

Each prints its figures as JSON on the last line of its output; bench/run.py merges them.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.environment import PROJECT_DIR, bench_environment
from bench.harness import QUEUES, BenchError, Harness, deadline_wait, rss_bytes

PLANS_PATH = PROJECT_DIR / "bench" / "plans-large.txt"
FILLER_PLANS_PATH = PROJECT_DIR / "bench" / "plans-filler.txt"
FILLER_ARGS = "--filler-workspaces 199 --filler-runs 50 --filler-prompts 250"
SLOW_LATENCY_MS, SLOW_WORKERS = 10_000, 250


def _median_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _ok(response, what: str):
    if response.status_code != 200:
        raise BenchError(f"{what}: HTTP {response.status_code}: {getattr(response, 'content', b'')[:300]!r}")
    return response


class DataWorld:
    """Scenarios on the year of data (PostgreSQL)."""

    def __init__(self, *, harness: Harness, repeats: int) -> None:
        from django.contrib.auth import get_user_model
        from django.test import Client
        from rest_framework.authtoken.models import Token

        from agent.models import JobGroup

        self.harness, self.repeats = harness, repeats
        user = get_user_model().objects.get(username="bench")
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
        self.token = Token.objects.get_or_create(user=user)[0].key
        self.api = Client(HTTP_AUTHORIZATION=f"Token {self.token}")
        self.browser = Client()
        self.browser.force_login(user)
        self.big_run = JobGroup.objects.filter(expected_responses__gte=50_000).order_by("-expected_responses").first()
        year_runs = JobGroup.objects.filter(workspace__name__startswith="Year of runs")
        self.year = year_runs.values_list("workspace_id", flat=True).first()
        self.daily_run = JobGroup.objects.filter(workspace_id=self.year).order_by("-created_at").first()
        self.results: dict = {}
        self.plans: list[str] = []
        self.plan_summary: dict = {}

    def answers_pages(self) -> None:
        """Answers API, page 1 against page 5,000 (20 a page) of the 100,000-answer run: keyset and numbered."""
        from rest_framework.pagination import Cursor

        from agent.answers_pagination import AnswersPagination
        from agent.models import JobItem

        run, size = self.big_run, 20
        url = f"/api/runs/{run.id}/answers/"
        deep = 5000
        # The cursor a client holds after following `next` 4,999 times: the edge (sort key) of the
        # last answer of page 4,999.
        order = JobItem.objects.filter(group=run).order_by("prompt_id", "provider", "id")
        row = (deep - 1) * size
        before, first = order.values_list("prompt_id", "provider", "id")[row - 1:row + 1]
        expected_first = first[2]
        paginator = AnswersPagination()
        paginator.base_url = f"http://testserver{url}?page_size={size}"
        cursor_url = paginator.encode_cursor(Cursor(offset=0, reverse=False, position=":".join(map(str, before))))
        got = _ok(self.api.get(cursor_url), "cursor page").json()
        if got["results"][0]["id"] != expected_first:
            raise BenchError(f"keyset page {deep} starts at {got['results'][0]['id']}, not {expected_first}")
        figures = {"answers": run.expected_responses, "page_size": size}
        calls = {
            "keyset_page_1": lambda: _ok(self.api.get(f"{url}?page_size={size}"), "page 1"),
            "keyset_page_5000": lambda: _ok(self.api.get(cursor_url), "keyset page 5000"),
            "numbered_page_1": lambda: _ok(self.api.get(f"{url}?page=1&page_size={size}"), "numbered page 1"),
            "numbered_page_5000": lambda: _ok(self.api.get(f"{url}?page={deep}&page_size={size}"), "numbered page 5000"),
        }
        for call in calls.values():
            call()  # warm
        times = {name: [] for name in calls}
        for _ in range(self.repeats):
            for name, call in calls.items():
                times[name].append(_median_ms(call, 1))
        figures.update({f"{k}_ms": round(statistics.median(v), 1) for k, v in times.items()})
        figures["keyset_ratio_5000_vs_1"] = figures["keyset_page_5000_ms"] / figures["keyset_page_1_ms"]
        figures["numbered_ratio_5000_vs_1"] = figures["numbered_page_5000_ms"] / figures["numbered_page_1_ms"]
        self.results["L1_answers_pages"] = figures
        self.explain("answers API, keyset page 1", lambda: self.api.get(f"{url}?page_size={size}"))
        self.explain("answers API, keyset page 5,000", lambda: self.api.get(cursor_url))
        self.explain("answers API, numbered page 5,000", lambda: self.api.get(f"{url}?page={deep}&page_size={size}"))

    def csv_export(self) -> None:
        """CSV export of the 100,000-answer run from a gunicorn worker: time and peak RSS growth."""
        import urllib.request

        from tests.redis_server import free_port

        port = free_port()
        server = self.harness.gunicorn(port=port, workers=1, settings="bench.settings")
        try:
            worker = psutil.Process(server.pid).children()[0]
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/runs/{self.big_run.id}/answers/?format=csv",
                                             headers={"Authorization": f"Token {self.token}"})
            with urllib.request.urlopen(request, timeout=60) as response:  # warm: imports, connections
                response.read(1 << 16)
            time.sleep(0.5)
            before = worker.memory_info().rss
            peak = [before]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], worker.memory_info().rss)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            size = lines = 0
            with urllib.request.urlopen(request, timeout=600) as response:
                while chunk := response.read(1 << 16):
                    size += len(chunk)
                    lines += chunk.count(b"\n")
            seconds = time.perf_counter() - started
            stop.set()
            sampler.join()
        finally:
            self.harness.stop([server])
        self.results["L2_csv_export"] = {
            "answers": self.big_run.expected_responses, "bytes": size, "lines": lines, "seconds": round(seconds, 2),
            "rss_mb_before": round(before / 2**20, 1), "rss_mb_peak": round(peak[0] / 2**20, 1),
            "rss_growth_mb": round((peak[0] - before) / 2**20, 1),
        }

    def admin_lists(self) -> None:
        """Admin run list (all runs, and one workspace's) and a run's item list, first and deep pages."""
        from django.contrib.admin.views.main import PAGE_VAR

        base = "/admin/agent/jobgroup/"
        items = f"{base}{self.big_run.id}/items/"
        calls = {
            "run_list": f"{base}",
            "run_list_page_5": f"{base}?{PAGE_VAR}=5",
            "run_list_one_workspace": f"{base}?workspace__id__exact={self.year}",
            "run_change_page": f"{base}{self.big_run.id}/change/",
            "item_list_page_1": items,
            "item_list_page_2000": f"{items}?page=2000",
            "item_list_provider_filter": f"{items}?provider=gemini&page=300",
        }
        figures = {}
        for name, url in calls.items():
            _ok(self.browser.get(url), name)
            call = lambda url=url, name=name: _ok(self.browser.get(url), name)  # noqa: E731
            figures[f"{name}_ms"] = round(_median_ms(call, self.repeats), 1)
        self.results["L3_admin"] = figures
        self.explain("admin run list", lambda: self.browser.get(base))
        self.explain("admin item list, page 1", lambda: self.browser.get(items))
        self.explain("admin item list, page 2,000", lambda: self.browser.get(f"{items}?page=2000"))

    def pages_and_status(self) -> None:
        """Workspace page, run page and status endpoint on the year workspace: medians and plans."""
        calls = {
            "workspace_page": lambda: _ok(self.browser.get(f"/workspaces/{self.year}/"), "workspace page"),
            "run_page": lambda: _ok(self.browser.get(f"/runs/{self.daily_run.id}/"), "run page"),
            "run_page_big_run": lambda: _ok(self.browser.get(f"/runs/{self.big_run.id}/"), "big run page"),
            "status": lambda: _ok(self.api.get(f"/api/runs/{self.daily_run.id}/status/"), "status"),
            "runs_api": lambda: _ok(self.api.get(f"/api/workspaces/{self.year}/runs/"), "runs API"),
        }
        for call in calls.values():
            call()
        self.results["L4_pages"] = {f"{k}_ms": round(_median_ms(c, self.repeats), 1) for k, c in calls.items()}
        for name, call in calls.items():
            self.explain(name.replace("_", " "), call)

    def explain(self, title: str, call) -> None:
        """Every SELECT the request runs, with PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) plan.

        Also kept per request: the shared buffers its statements touched (hit + read, the plans' top
        nodes) and every sequential scan, which is what grows with the tables when a read is not
        bounded by its run's or workspace's index range.
        """
        import re

        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            call()
        lines = [f"=== {title}: {len(captured)} queries"]
        buffers, seq_scans = 0, []
        with connection.cursor() as cursor:
            for query in captured.captured_queries:
                sql = query["sql"]
                if not sql.lstrip().upper().startswith("SELECT"):
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING ON, SUMMARY ON) " + sql)
                plan = [row[0] for row in cursor.fetchall()]
                top = next((line for line in plan if line.strip().startswith("Buffers:")), "")
                buffers += sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", top.split("temp")[0]))
                seq_scans += re.findall(r"Seq Scan on (\w+)", "\n".join(plan))
                lines += [f"--- {query['time']} s: {sql[:400]}", *plan]
        self.plans.append("\n".join(lines))
        self.plan_summary[title] = {"buffers": buffers, "seq_scans": sorted(set(seq_scans))}


def filler_compare(*, world: DataWorld, filler_args: str) -> None:
    """The same requests (L1, L3, L4) on the year alone, then after other tenants' filler is added.

    Both times the tables are vacuumed and analysed first, so neither set reads a table that
    autovacuum is still working through. Plans of both sets go to bench/plans-filler.txt.
    """
    from django.core.management import call_command
    from django.db import connection

    from agent.models import JobItem

    steps = (world.answers_pages, world.admin_lists, world.pages_and_status)
    phases: dict = {}
    plans: dict = {}
    for phase in ("year", "with_filler"):
        figures: dict = {}
        if phase == "with_filler":
            started = time.monotonic()
            call_command("bench_fixture", "--filler-only", *filler_args.split())
            figures["build_seconds"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE)")
        figures["vacuum_analyze_seconds"] = round(time.monotonic() - started, 1)
        figures["items"] = JobItem.objects.count()
        figures["load_average"] = os.getloadavg()
        world.results, world.plans, world.plan_summary = {}, [], {}
        for step in steps:
            print(f"- {phase}: {step.__doc__.splitlines()[0]}", flush=True)
            step()
        figures["ms"] = {f"{scenario[:2]} {name.removesuffix('_ms')}": value for scenario, values in world.results.items()
                         for name, value in values.items() if name.endswith("_ms")}
        figures["plans"] = world.plan_summary
        phases[phase] = figures
        plans[phase] = f"##### {phase}: {figures['items']:,} rows in agent_jobitem\n\n" + "\n\n".join(world.plans) + "\n"
        FILLER_PLANS_PATH.write_text("\n\n".join(plans.values()))  # after each set: the first outlives a failed build
    year, filler = phases["year"], phases["with_filler"]
    lines = [f"{'request (median ms)':<34} {year['items']:>12,} {filler['items']:>12,}  ratio",
             *(f"{name:<34} {year['ms'][name]:>12} {filler['ms'][name]:>12}  {filler['ms'][name] / year['ms'][name]:.2f}"
               for name in year["ms"]),
             "", f"{'plan (buffers touched; seq scans)':<34} {'year':>12} {'with filler':>12}",
             *(f"{title:<34} {year['plans'][title]['buffers']:>12} {filler['plans'][title]['buffers']:>12}  "
               f"{','.join(filler['plans'][title]['seq_scans']) or 'no seq scan'}" for title in year["plans"])]
    print("\n".join(lines), flush=True)
    answer_scans = [t for t, summary in filler["plans"].items() if "agent_jobitem" in summary["seq_scans"]]
    world.results = {"L7_filler": {
        "year": year, "with_filler": filler, "requests_scanning_agent_jobitem": answer_scans,
        "ratios": {name: round(filler["ms"][name] / year["ms"][name], 2) for name in year["ms"]}}}


class RunsWorld:
    """Big runs and slow providers with real consumers (SQLite, this machine's one host)."""

    def __init__(self, *, harness: Harness, redis_server, samples: int) -> None:
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        from agent.connections import redis_client

        self.harness, self.redis_server, self.samples = harness, redis_server, samples
        self.user = get_user_model().objects.create_user(username="bench", password="bench-password-not-secret")
        self.token = Token.objects.create(user=self.user).key
        self.redis = redis_client()
        self.results: dict = {}

    def workspace(self, prompts: int, name: str, samples: int = 1):
        from prompts.models import Prompt
        from workspaces.services import workspace_create

        workspace = workspace_create(user=self.user, name=name, enabled_providers=list(QUEUES), samples_per_run=samples)
        # More active prompts than a workspace may have through the API (the cap is 1,000): the
        # size a big installation's run reaches with samples is what is measured here.
        Prompt.objects.bulk_create([Prompt(workspace=workspace, text=f"Which CRM for team {n}?") for n in range(prompts)],
                                   batch_size=5000)
        return workspace

    def queue_keys(self) -> list[str]:
        from agent.queues import huey_for

        return [huey_for(p).storage.queue_key for p in QUEUES]

    def big_submit(self, prompts: int = 10_000, repeats: int = 3) -> None:
        """POST /runs/ of 10,000 prompts x 4 providers x the samples until all are queued; then the run page and answers API."""
        from django.test import Client

        from agent.models import JobGroup
        from agent.services.closing import job_group_cancel

        workspace = self.workspace(prompts, "Big submit", samples=self.samples)
        api = Client(HTTP_AUTHORIZATION=f"Token {self.token}")
        browser = Client()
        browser.force_login(self.user)
        seconds, groups = [], []
        for _ in range(repeats):
            self.redis.delete(*self.queue_keys())
            started = time.perf_counter()
            response = api.post(f"/api/workspaces/{workspace.id}/runs/")
            queued = sum(self.redis.zcard(k) for k in self.queue_keys())
            seconds.append(time.perf_counter() - started)
            if response.status_code != 202:
                raise BenchError(f"big submit: HTTP {response.status_code}: {response.content[:300]!r}")
            groups.append(JobGroup.objects.get(id=response.json()["jobGroupId"]))
        self.redis.delete(*self.queue_keys())
        group = groups[-1]
        expected = group.expected_responses
        if queued != expected:
            raise BenchError(f"big submit: {queued} of {expected} items queued")
        page_ms = _median_ms(lambda: _ok(browser.get(f"/runs/{group.id}/"), "run page"), 5)
        answers_ms = _median_ms(lambda: _ok(api.get(f"/api/runs/{group.id}/answers/"), "answers"), 5)
        status_ms = _median_ms(lambda: _ok(api.get(f"/api/runs/{group.id}/status/"), "status"), 5)
        for g in groups:
            job_group_cancel(group=g)
        self.results["L5_big_submit"] = {
            "prompts": prompts, "items": expected, "samples": self.samples, "repeats": repeats,
            "median_seconds": round(statistics.median(seconds), 3), "seconds": [round(s, 3) for s in seconds],
            "run_page_ms": round(page_ms, 1), "answers_api_ms": round(answers_ms, 1), "status_ms": round(status_ms, 1),
        }

    def big_run(self, prompts: int = 10_000, workers: int = 8) -> None:
        """A run of 10,000 prompts x 4 providers x the samples answered to the end by real consumers, started and
        followed by `manage.py run_group --wait`, with the run page and status read while it runs."""
        import subprocess

        from django.test import Client

        from agent.models import JobGroup, JobItem

        workspace = self.workspace(prompts, "Big run", samples=self.samples)
        api = Client(HTTP_AUTHORIZATION=f"Token {self.token}")
        browser = Client()
        browser.force_login(self.user)
        consumers = self.harness.consumers(workers=workers, latency_ms=0)
        try:
            time.sleep(3)  # every consumer started
            started, started_wall = time.perf_counter(), time.time()
            # Piped: the command writes a plain line whenever a provider moves, as under cron.
            command = subprocess.Popen(
                [sys.executable, "manage.py", "run_group", str(workspace.id), "--wait", "--timeout", "3000"],
                cwd=PROJECT_DIR, env=self.harness.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            lines: list[tuple[float, str]] = []
            reader = threading.Thread(target=lambda: lines.extend(
                (time.perf_counter() - started, line.rstrip()) for line in command.stdout), daemon=True)
            reader.start()
            deadline_wait(lambda: JobGroup.objects.filter(workspace=workspace).exists(), timeout=120, what="big run submit",
                          interval=0.05, alive=[command])
            group = JobGroup.objects.get(workspace=workspace)
            page_ms, status_ms = [], []
            while command.poll() is None and time.perf_counter() - started < 3000:
                page_ms.append(_median_ms(lambda: _ok(browser.get(f"/runs/{group.id}/"), "run page"), 1))
                status_ms.append(_median_ms(lambda: _ok(api.get(f"/api/runs/{group.id}/status/"), "status"), 1))
                time.sleep(1)
            command.wait(timeout=60)
            reader.join(timeout=10)
            finished_at = JobItem.objects.filter(group=group).order_by("-finished_at").values_list("finished_at", flat=True)[0]
            all_seconds = time.perf_counter() - started
            ok = JobItem.objects.filter(group=group, status=JobItem.Status.OK).count()
        finally:
            self.harness.stop(consumers)
        if command.returncode != 0:
            raise BenchError(f"big run: run_group exited {command.returncode}: {lines[-5:]}")
        last_answer_seconds = finished_at.timestamp() - started_wall
        self.results["L5_big_run"] = {
            "items": group.expected_responses, "ok": ok, "consumer_workers": workers, "seconds": round(all_seconds, 1),
            "answers_per_second": round(ok / all_seconds, 1),
            "cli_submitted_after_seconds": round(lines[0][0], 2) if lines else None,
            "cli_lines": len(lines), "cli_exit_after_last_answer_seconds": round(lines[-1][0] - last_answer_seconds, 2),
            "run_page_ms_median": round(statistics.median(page_ms), 1), "run_page_ms_max": round(max(page_ms), 1),
            "status_ms_median": round(statistics.median(status_ms), 1), "status_ms_max": round(max(status_ms), 1),
            "page_reads": len(page_ms), "cli_last_lines": [line for _, line in lines[-6:]],
        }

    def slow_providers(self, items_per_queue: int = 1500, window: tuple[float, float] = (15.0, 0.3)) -> None:
        """4 queues x 250 worker threads, provider latency 10 s: answers/s in steady state against 1,000/10 s."""
        from agent.models import JobItem
        from agent.services.submit import job_group_submit

        workspace = self.workspace(items_per_queue, "Slow providers")
        in_flight_max = len(QUEUES) * SLOW_WORKERS
        ideal = in_flight_max / (SLOW_LATENCY_MS / 1000)
        consumers = self.harness.consumers(workers=SLOW_WORKERS, latency_ms=SLOW_LATENCY_MS)
        try:
            time.sleep(3)  # every worker thread started and waiting on its queue
            rss_idle = sum(rss_bytes(consumers))
            group = job_group_submit(workspace=workspace, user=self.user).job_group
            finished = JobItem.objects.filter(group=group, status__in=JobItem.FINISHED)
            running = JobItem.objects.filter(group=group, status=JobItem.Status.RUNNING)
            started = time.perf_counter()
            total_seconds = group.expected_responses / ideal
            # Steady state: from after the first wave has started and finished to before the last one.
            time.sleep(window[0])
            first_count, first_time = finished.count(), time.perf_counter()
            peak_running, peak_rss, in_flight = 0, 0, []
            end_at = started + total_seconds * (1 - window[1])
            while time.perf_counter() < end_at:
                in_flight.append(running.count())
                peak_running = max(peak_running, in_flight[-1])
                peak_rss = max(peak_rss, sum(rss_bytes(consumers)))
                time.sleep(1)
            second_count, second_time = finished.count(), time.perf_counter()
            deadline_wait(lambda: not JobItem.objects.filter(group=group, status__in=JobItem.UNFINISHED).exists(),
                          timeout=total_seconds * 3 + 60, what="slow-provider run", interval=0.5, alive=consumers)
            all_seconds = time.perf_counter() - started
            ok = JobItem.objects.filter(group=group, status=JobItem.Status.OK).count()
        finally:
            self.harness.stop(consumers)
        rate = (second_count - first_count) / (second_time - first_time)
        self.results["L6_slow_providers"] = {
            "queues": len(QUEUES), "workers_per_queue": SLOW_WORKERS, "latency_ms": SLOW_LATENCY_MS,
            "items": group.expected_responses, "ok": ok, "ideal_answers_per_second": ideal,
            "steady_answers_per_second": round(rate, 1), "efficiency": rate / ideal,
            "whole_run_efficiency": group.expected_responses / all_seconds / ideal,
            # Little's law: with 10 s calls, rate = calls in flight / 10 s; the window's rate above can
            # exceed 1 because the first waves finish in step (latency varies +-20 %).
            "mean_in_flight": round(statistics.mean(in_flight), 1), "in_flight_ratio": statistics.mean(in_flight) / in_flight_max,
            "peak_running_items": peak_running, "rss_mb_idle": round(rss_idle / 2**20, 1),
            "rss_mb_peak": round(peak_rss / 2**20, 1),
            "rss_kb_per_in_flight_call": round((peak_rss - rss_idle) / max(1, peak_running) / 1024, 1),
            "rss_mb_per_process_peak": round(peak_rss / len(QUEUES) / 2**20, 1),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", choices=["data", "runs"], required=True)
    parser.add_argument("--database-url", help="PostgreSQL database (created and dropped unless --keep); needed by --world data, "
                        "--world runs uses SQLite without it")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--fixture-args", default="", help="extra arguments for manage.py bench_fixture")
    parser.add_argument("--submit-prompts", type=int, default=10_000,
                        help="prompts of the big submit (x 4 providers x --submit-samples)")
    parser.add_argument("--submit-samples", type=int, default=1,
                        help="samples per run of the big submit's workspace (3 with 10,000 prompts: 120,000 items)")
    parser.add_argument("--filler", action="store_true",
                        help="--world data: measure L1, L3 and L4 on the year alone, then add other tenants' filler "
                             "(about 10,000,000 answers) and measure them again, side by side")
    parser.add_argument("--filler-args", default=FILLER_ARGS, help="manage.py bench_fixture arguments of the filler")
    parser.add_argument("--only", default="", help="comma-separated scenario names (e.g. answers_pages,csv_export)")
    options = parser.parse_args()
    only = set(filter(None, options.only.split(",")))
    output: dict = {}
    started = time.monotonic()
    database_url = options.database_url
    if options.world == "data" and not (database_url or "").startswith("postgres"):
        parser.error("--world data needs --database-url postgres://...")
    with bench_environment(keep=options.keep, database_url=database_url) as (workdir, redis_server):
        os.environ["BENCH_WORKDIR"] = str(workdir)
        harness = Harness(workdir=workdir, redis_url=redis_server.url, database_url=os.environ["DATABASE_URL"])
        try:
            if options.world == "data":
                from django.core.management import call_command

                from agent.models import JobItem

                if not JobItem.objects.exists():
                    fixture_started = time.monotonic()
                    call_command("bench_fixture", "--analyze", *options.fixture_args.split())
                    output["fixture_seconds"] = round(time.monotonic() - fixture_started, 1)
                output["items_in_database"] = JobItem.objects.count()
                world = DataWorld(harness=harness, repeats=options.repeats)
                steps = [world.answers_pages, world.csv_export, world.admin_lists, world.pages_and_status]
                if options.filler:
                    steps = [functools.partial(filler_compare, world=world, filler_args=options.filler_args)]
            else:
                world = RunsWorld(harness=harness, redis_server=redis_server, samples=options.submit_samples)
                steps = [functools.partial(world.big_submit, prompts=options.submit_prompts),
                         functools.partial(world.big_run, prompts=options.submit_prompts), world.slow_providers]
            for step in steps:
                step_name = getattr(step, "__name__", None) or step.func.__name__
                if only and step_name not in only:
                    continue
                step_started = time.monotonic()
                print(f"- {(step.__doc__ if step_name == getattr(step, '__name__', '') else step.func.__doc__).splitlines()[0]}",
                      flush=True)
                step()
                print(f"  ({time.monotonic() - step_started:.1f} s)", flush=True)
            output.update(world.results)
            if options.world == "data" and world.plans and not options.filler:
                PLANS_PATH.write_text("\n\n".join(world.plans) + "\n")
        finally:
            harness.close()
    output["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(output, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
