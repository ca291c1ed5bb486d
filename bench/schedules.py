"""Benchmark scenario 8: many schedules due in the same minute (a large installation at 06:00 UTC).

N workspaces, each with one schedule "0 6 * * *" UTC, one active prompt and one provider; four
real consumers (one per queue) tick as shipped. Every schedule is made due at the same instant
(its next run set to the latest 06:00), and the clock runs until every schedule has started its
run. Goal: all fire within 30 s, each exactly once (the database's unique constraints hold
either way; the count proves no slot was skipped or doubled).
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

from bench.harness import QUEUES, BenchError, deadline_wait

FIRE_GOAL_SECONDS = 30.0


def scenario_schedules(bench, *, schedules: int) -> dict:
    from django.contrib.auth import get_user_model

    from agent.cron import slot_latest, slot_next
    from agent.models import JobGroup, Schedule
    from prompts.models import Prompt
    from workspaces.models import Membership, Workspace

    owner = get_user_model().objects.create_user(username="bench-scheduler")
    workspaces = Workspace.objects.bulk_create(
        [Workspace(name=f"Scheduled {n}", enabled_providers=[QUEUES[n % len(QUEUES)]]) for n in range(schedules)]
    )
    Membership.objects.bulk_create([Membership(user=owner, workspace=w, role=Membership.Role.OWNER) for w in workspaces])
    Prompt.objects.bulk_create([Prompt(workspace=w, text=f"Which CRM suits team {w.name}?") for w in workspaces])
    later = slot_next("0 6 * * *", "UTC", after=datetime.now(UTC))
    made = Schedule.objects.bulk_create(
        [Schedule(workspace=w, cron="0 6 * * *", timezone="UTC", priority="low", created_by=owner, next_run_at=later)
         for w in workspaces]
    )
    consumers = bench.harness.consumers(workers=4, latency_ms=0)
    try:
        time.sleep(3)  # every consumer up and ticking, as in production
        due_at = datetime.now(UTC)
        slot = slot_latest("0 6 * * *", "UTC", at_or_before=due_at)
        started = time.monotonic()
        Schedule.objects.filter(id__in=[s.id for s in made]).update(next_run_at=slot)
        runs = JobGroup.objects.filter(schedule__in=made)
        try:
            deadline_wait(lambda: runs.count() >= schedules, timeout=120, what=f"{schedules} schedules fired",
                          interval=0.1, alive=consumers)
        except BenchError as exc:
            raise BenchError(f"{exc}; {runs.count()} fired") from None
        fired_seconds = time.monotonic() - started
        time.sleep(3)  # more ticks on every consumer: nothing may fire twice
        per_slot = runs.values_list("schedule_id", "scheduled_for")
        distinct = len(set(per_slot))
        total = runs.count()
        last_created = max(runs.values_list("created_at", flat=True))
    finally:
        bench.harness.stop(consumers)
    bench.check(total == schedules, f"{total} runs for {schedules} schedules")
    bench.check(distinct == total, f"{total - distinct} slots ran twice")
    return {
        "schedules": schedules,
        "runs": total,
        "distinct_slots": distinct,
        "seconds_until_all_fired": round(fired_seconds, 2),
        "last_run_created_after_due_seconds": round((last_created - due_at).total_seconds(), 2),
        "goal_seconds": FIRE_GOAL_SECONDS,
        "consumers": len(QUEUES),
    }
