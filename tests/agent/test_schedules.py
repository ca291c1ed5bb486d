"""Schedules fire by themselves: one run per slot however many consumers tick, catch-up, skips."""
from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from agent.cron import slot_latest
from agent.models import JobGroup, Schedule
from agent.services.schedules import schedule_create, schedules_fire_due
from tests.agent.schedule_fire_child import fire_in_child
from tests.factories import workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)


def _due_now(schedule: Schedule, *, slot: datetime) -> None:
    Schedule.objects.filter(id=schedule.id).update(next_run_at=slot)


def _hourly(user, workspace, **kwargs) -> Schedule:
    return schedule_create(workspace=workspace, user=user, cron="0 * * * *", timezone="UTC", **kwargs)


def test_due_schedule_starts_one_low_priority_run_for_its_slot(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    schedule = _hourly(user, workspace)
    slot = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    _due_now(schedule, slot=slot)

    schedules_fire_due(now=slot + timedelta(seconds=5))
    schedules_fire_due(now=slot + timedelta(seconds=15))  # the next tick finds nothing new

    run = JobGroup.objects.get(schedule=schedule)
    assert (run.trigger, run.priority, run.scheduled_for) == ("schedule", "low", slot)
    assert run.triggered_by == user and run.expected_responses == 2 and not run.late
    schedule.refresh_from_db()
    assert schedule.last_run_at == slot
    assert schedule.next_run_at == slot + timedelta(hours=1)


def test_after_missed_slots_one_catch_up_run_for_the_latest_slot_marked_late(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    schedule = _hourly(user, workspace)
    missed_first = datetime(2025, 1, 6, 3, 0, tzinfo=UTC)
    _due_now(schedule, slot=missed_first)  # consumers were down from 03:00 until 06:20

    schedules_fire_due(now=datetime(2025, 1, 6, 6, 20, tzinfo=UTC))

    runs = list(JobGroup.objects.filter(schedule=schedule))
    assert len(runs) == 1
    assert runs[0].scheduled_for == datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    assert runs[0].late
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2025, 1, 6, 7, 0, tzinfo=UTC)


def test_workspace_without_active_prompts_records_why_and_waits_for_the_next_slot(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"])
    schedule = _hourly(user, workspace)
    slot = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    _due_now(schedule, slot=slot)

    schedules_fire_due(now=slot + timedelta(seconds=3))
    schedule.refresh_from_db()
    assert "no active prompts" in schedule.last_skip_reason
    assert schedule.last_skip_at == slot and schedule.last_run_at is None
    assert schedule.next_run_at == slot + timedelta(hours=1)  # not retried every tick
    assert not JobGroup.objects.filter(workspace=workspace).exists()


def test_workspace_without_providers_records_why(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    schedule = _hourly(user, workspace)
    workspace.enabled_providers = []
    workspace.save()
    slot = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    _due_now(schedule, slot=slot)
    schedules_fire_due(now=slot)
    schedule.refresh_from_db()
    assert "no enabled providers" in schedule.last_skip_reason


def test_two_schedules_on_the_same_slot_of_one_workspace_make_one_run(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    first = _hourly(user, workspace)
    second = schedule_create(workspace=workspace, user=user, cron="0 7 * * *", timezone="Europe/Berlin")  # 06:00 UTC
    slot = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    _due_now(first, slot=slot)
    _due_now(second, slot=slot)

    schedules_fire_due(now=slot + timedelta(seconds=2))

    assert JobGroup.objects.filter(workspace=workspace, scheduled_for=slot).count() == 1
    skipped = [s for s in Schedule.objects.filter(workspace=workspace) if s.last_skip_reason]
    assert len(skipped) == 1 and "already started a run for this time" in skipped[0].last_skip_reason


def test_paused_schedule_does_not_fire(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    schedule = _hourly(user, workspace)
    slot = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    Schedule.objects.filter(id=schedule.id).update(next_run_at=slot, is_active=False)
    schedules_fire_due(now=slot + timedelta(minutes=1))
    assert not JobGroup.objects.filter(schedule=schedule).exists()


def test_four_processes_firing_at_once_make_exactly_one_run_per_slot(user, redis_url) -> None:
    """The database alone decides: no lock is taken here, four processes race on every schedule."""
    from tests.conftest import database_url

    slot = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    schedules = []
    for n in range(12):
        workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"], name=f"Racing {n}")
        schedule = _hourly(user, workspace)
        _due_now(schedule, slot=slot)
        schedules.append(schedule)
    connection.close()

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 3
    now_iso = (slot + timedelta(seconds=4)).isoformat()
    children = [
        context.Process(target=fire_in_child, args=(database_url(), redis_url, start_at, now_iso, results))
        for _ in range(4)
    ]
    for child in children:
        child.start()
    started = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)

    assert sum(started) == 12
    assert JobGroup.objects.filter(trigger="schedule").count() == 12
    assert sorted(JobGroup.objects.values_list("schedule_id", flat=True)) == sorted(s.id for s in schedules)


def test_four_consumers_ticking_fire_each_schedule_once_per_slot(user, consumers) -> None:
    """Real `run_huey` processes, one per queue, all ticking twice a second: each slot makes one run."""
    workspaces = [
        workspace_with_prompts(user=user, prompts=1, providers=["chatgpt", "claude"], name=f"Tick {n}") for n in range(6)
    ]
    schedules = [schedule_create(workspace=w, user=user, cron="0 6 * * *", timezone="UTC") for w in workspaces]
    consumers.start_all(workers=2, AGENT_SCHEDULE_TICK_SECONDS="0.5")
    time.sleep(3)  # every consumer is up and ticking
    due_since = datetime.now(UTC)
    slot = slot_latest("0 6 * * *", "UTC", at_or_before=due_since)
    Schedule.objects.filter(id__in=[s.id for s in schedules]).update(next_run_at=slot)

    runs = JobGroup.objects.filter(schedule__in=schedules)
    deadline = time.monotonic() + 60
    while runs.filter(status="completed").count() < len(schedules) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # a dozen more ticks on every consumer: nothing else may start

    assert runs.count() == len(schedules), consumers.logs()
    assert sorted(runs.values_list("schedule_id", flat=True)) == sorted(s.id for s in schedules)
    assert set(runs.values_list("scheduled_for", flat=True)) == {slot}
    assert set(runs.values_list("status", flat=True)) == {"completed"}
    assert max(runs.values_list("created_at", flat=True)) - due_since < timedelta(seconds=30)
