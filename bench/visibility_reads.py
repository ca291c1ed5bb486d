#!/usr/bin/env python
"""Visibility read and analysis-cost benchmark (issue 16): `python bench/visibility_reads.py [--runs 365 --answers-per-run 400]`.

In a throwaway world (its own redis-server and SQLite file, or --database-url), it stores one
workspace's daily runs (plus one run of 12,000 answers), analyses them and writes their per-run
figures as the consumers would, then times with Django's test client:
- the trend endpoint GET /api/workspaces/{id}/visibility/ (RunStat reads only) and the dashboard page;
- the 12,000-answer run's GET /api/runs/{id}/visibility/;
and, in the same process, the CPU time of recording an answer (claim, record, progress count in
Redis) with and without the visibility analysis connected: the analysis's share of a consumer's
CPU per answer. Medians of repeated requests; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from a fresh clone

from bench.visibility_reanalyse import BRANDS, answer_text, sources


def _median_ms(call, repeats: int) -> tuple[float, float]:
    """Median wall and CPU (this process) milliseconds; the CPU time hardly moves with the machine's load."""
    call()  # warm caches and the connection
    times, cpu_times = [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        call()
        times.append((time.perf_counter() - started) * 1000)
        cpu_times.append((time.process_time() - cpu) * 1000)
    return statistics.median(times), statistics.median(cpu_times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--answers-per-run", type=int, default=400)
    parser.add_argument("--big-run", type=int, default=12_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cpu-items", type=int, default=600)
    parser.add_argument("--database-url")
    parser.add_argument("--fixture-prompts", type=int, default=0,
                        help="build the world with `manage.py bench_fixture --mentions-bulk` instead: --runs daily runs "
                             "of this many prompts × 4 providers (700 → 1,022,000 answers a year) and a --big-run run, "
                             "findings written directly; times the reads only (no CPU measure)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database of --database-url (PostgreSQL or sqlite:////path) to measure it again")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    from bench.environment import bench_environment

    with bench_environment(database_url=args.database_url, keep=args.keep) as (workdir, _redis):
        return _run_fixture(args) if args.fixture_prompts else _run(args)


def _run(args) -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from agent.models import JobGroup, JobItem
    from prompts.models import Prompt
    from visibility.services.aggregates import _aggregates_write
    from visibility.services.analysis import items_analyse
    from visibility.services.brands import brand_create
    from workspaces.models import Membership, Workspace

    rng = random.Random(16)
    providers = ["chatgpt", "perplexity", "gemini", "claude"]
    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    workspace = Workspace.objects.create(name="bench", enabled_providers=providers, samples_per_run=1)
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    for n, a, d, o, c in BRANDS:
        brand_create(workspace=workspace, name=n, aliases=a, domains=d, is_own=o, match_case=c)
    prompts = Prompt.objects.bulk_create(
        Prompt(workspace=workspace, text=f"prompt {n}", is_active=False)
        for n in range(max(args.big_run, args.answers_per_run) // len(providers))
    )
    # A few hundred distinct texts reused: storing a year of answers must not take the benchmark's time.
    texts = [answer_text(rng) for _ in range(300)]
    started = time.monotonic()
    groups, stored = [], 0
    today = dt.datetime.now(dt.UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    plan = [args.answers_per_run] * args.runs + [args.big_run]
    for day, size in enumerate(plan):
        group = JobGroup.objects.create(workspace=workspace, status=JobGroup.Status.COMPLETED, providers=providers)
        JobGroup.objects.filter(id=group.id).update(created_at=today - dt.timedelta(days=len(plan) - day))
        group.refresh_from_db()
        # The big run is what a full workspace asks: 1,000 prompts x 4 providers x 3 samples.
        samples = 3 if size == args.big_run else 1
        per_sample = size // samples
        JobItem.objects.bulk_create(
            (
                JobItem(group=group, provider=providers[n % 4], prompt=prompts[(n % per_sample) // 4],
                        sample=n // per_sample + 1, prompt_text="p", status=JobItem.Status.OK, backend="simulated",
                        text=texts[(day * 7 + n) % len(texts)], sources=sources(rng))
                for n in range(per_sample * samples)
            ),
            batch_size=4000,
        )
        stored += size
        groups.append(group)
    print(f"stored {stored:,} answers in {len(groups)} runs ({time.monotonic() - started:.0f} s, {connection.vendor})")
    started = time.monotonic()
    ids = list(JobItem.objects.order_by("id").values_list("id", flat=True))
    for start in range(0, len(ids), 4000):
        items_analyse(item_ids=ids[start : start + 4000])
    for start in range(0, len(groups), 50):
        _aggregates_write(groups[start : start + 50])
    print(f"analysed and aggregated in {time.monotonic() - started:.0f} s")

    _reads_time(user=user, workspace=workspace, big=groups[-1], args=args)
    _cpu_time(workspace=workspace, user=user, prompts=prompts, texts=texts, rng=rng, args=args)
    return 0


def _run_fixture(args) -> int:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from agent.models import JobGroup, JobItem

    started = time.monotonic()
    if not get_user_model().objects.filter(username="bench").exists():  # a kept database is measured again
        call_command("bench_fixture", days=args.runs, prompts=args.fixture_prompts, big_run_answers=args.big_run,
                     mentions_bulk=True, analyze=True)
    print(f"fixture ready in {time.monotonic() - started:.0f} s ({connection.vendor}); "
          f"{JobItem.objects.filter(findings__isnull=False).count():,} analysed answers in all")
    user = get_user_model().objects.get(username="bench")
    groups = JobGroup.objects.filter(workspace__memberships__user=user)
    big = groups.filter(workspace__name__startswith="One big run").get()
    workspace = groups.filter(workspace__name__startswith="Year of runs").first().workspace
    _reads_time(user=user, workspace=workspace, big=big, args=args)
    return 0


def _reads_time(*, user, workspace, big, args) -> None:
    from django.test import Client

    client = Client()
    client.force_login(user)
    results = {
        "trend (a year, all providers)": _median_ms(
            lambda: _ok(client.get(f"/api/workspaces/{workspace.id}/visibility/")), args.repeats),
        "dashboard page (last year)": _median_ms(
            lambda: _ok(client.get(f"/workspaces/{workspace.id}/visibility/?period=365")), args.repeats),
        "dashboard page (last 90 days)": _median_ms(
            lambda: _ok(client.get(f"/workspaces/{workspace.id}/visibility/")), args.repeats),
        f"run visibility ({args.big_run:,} answers)": _median_ms(
            lambda: _ok(client.get(f"/api/runs/{big.id}/visibility/")), args.repeats),
    }
    from django.test import override_settings

    # The first read of a body (after a run closes or a brand edit) computes it: the cache off.
    with override_settings(VISIBILITY_CACHE_SECONDS=0):
        results["trend, first read (uncached)"] = _median_ms(
            lambda: _ok(client.get(f"/api/workspaces/{workspace.id}/visibility/")), args.repeats)
        results["run visibility, first read (uncached)"] = _median_ms(
            lambda: _ok(client.get(f"/api/runs/{big.id}/visibility/")), max(3, args.repeats // 3))
    for name, (ms, cpu_ms) in results.items():
        print(f"{name}: median {ms:.0f} ms (CPU of this process {cpu_ms:.0f} ms)")
    print(f"load average {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


def _cpu_time(*, workspace, user, prompts, texts, rng, args) -> None:
    from agent.models import JobItem
    from agent.providers.base import Answer
    from agent.services.items import answer_record, item_claim
    from agent.services.submit import job_group_submit
    from agent.signals import answer_findings
    from agent.tasks import QueuedItem
    from prompts.models import Prompt
    from visibility.receivers import on_answer_findings

    # CPU per recorded answer, with and without the analysis receiver (same process, same Redis).
    Prompt.objects.filter(workspace=workspace).update(is_active=False)
    Prompt.objects.filter(id__in=[p.id for p in prompts[: args.cpu_items // 4]]).update(is_active=True)

    def record_all() -> float:
        group = job_group_submit(workspace=workspace, user=user).job_group
        items = list(JobItem.objects.filter(group=group).values_list("id", "provider"))
        cpu = time.process_time()
        for item_id, provider in items:
            queued = QueuedItem(item_id=item_id, group_id=str(group.id), provider_id=provider)
            item_claim(item=queued)
            answer_record(item=queued, backend="simulated",
                          answer=Answer(text=texts[item_id % len(texts)], sources=sources(rng)))
        return (time.process_time() - cpu) / len(items) * 1e6

    rounds = []
    for _ in range(3):
        answer_findings.disconnect(dispatch_uid="visibility.answer_findings")
        without = record_all()
        answer_findings.connect(on_answer_findings, dispatch_uid="visibility.answer_findings")
        with_analysis = record_all()
        rounds.append((without, with_analysis))
    without = statistics.median(r[0] for r in rounds)
    with_analysis = statistics.median(r[1] for r in rounds)
    print(f"CPU per answer recorded: {without:.0f} µs without analysis, {with_analysis:.0f} µs with "
          f"(+{(with_analysis / without - 1) * 100:.1f} %); the provider call itself is not included")


def _ok(response):
    assert response.status_code == 200, response.status_code
    return response


if __name__ == "__main__":
    sys.exit(main())
