"""Priorities on the provider queues and delayed runs, on a real queue with real consumers."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from agent.models import JobGroup, JobItem
from agent.queues import queue_length
from agent.services.schedules import job_groups_release_due
from agent.services.submit import job_group_submit
from tests.factories import wait_for_group_closed, workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)


def test_high_run_submitted_after_150_low_items_finishes_before_them(user, consumers) -> None:
    bulk = workspace_with_prompts(user=user, prompts=150, providers=["chatgpt"], name="Bulk")
    urgent = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt"], name="Urgent")
    consumers.start("chatgpt", workers=1, AGENT_SIMULATED_LATENCY_MS="20")
    time.sleep(2)

    low = job_group_submit(workspace=bulk, user=user, priority="low").job_group
    high = job_group_submit(workspace=urgent, user=user, priority="high").job_group

    wait_for_group_closed(high.id, timeout=60)
    high_done = max(JobItem.objects.filter(group=high).values_list("finished_at", flat=True))
    low_done_before = JobItem.objects.filter(group=low, finished_at__lt=high_done).count()
    assert low_done_before < 10, f"{low_done_before} low items finished before the high run\n{consumers.logs()}"
    wait_for_group_closed(low.id, timeout=120)
    assert JobItem.objects.filter(group=low, status="ok").count() == 150


def test_equal_priorities_keep_submission_order(user, consumers) -> None:
    workspaces = [workspace_with_prompts(user=user, prompts=20, providers=["claude"], name=f"Order {n}") for n in range(3)]
    groups = [job_group_submit(workspace=w, user=user, priority="normal").job_group for w in workspaces]
    consumers.start("claude", workers=1, AGENT_SIMULATED_LATENCY_MS="5")
    for group in groups:
        wait_for_group_closed(group.id, timeout=60)
    last_finished = [max(JobItem.objects.filter(group=g).values_list("finished_at", flat=True)) for g in groups]
    first_started = [min(JobItem.objects.filter(group=g).values_list("started_at", flat=True)) for g in groups]
    assert last_finished[0] < first_started[1] and last_finished[1] < first_started[2]


def test_unknown_priority_is_400(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    response = api.post(f"/api/workspaces/{workspace.id}/runs/", {"priority": "urgent"}, format="json")
    assert response.status_code == 400
    assert "priority" in response.json()


def test_delayed_run_waits_unqueued_then_starts_on_time(api, user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["gemini"])
    consumers.start("gemini", workers=2, AGENT_SCHEDULE_TICK_SECONDS="1")
    run_at = datetime.now(UTC) + timedelta(seconds=4)
    response = api.post(f"/api/workspaces/{workspace.id}/runs/", {"run_at": run_at.isoformat(), "priority": "high"},
                        format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "scheduled"
    group_id = body["jobGroupId"]

    status = api.get(f"/api/runs/{group_id}/status/").json()
    assert status["status"] == "pending"
    assert datetime.fromisoformat(status["response"]["runAt"]) == run_at.replace(microsecond=run_at.microsecond)
    assert JobGroup.objects.get(id=group_id).status == "scheduled"
    assert queue_length("gemini") == 0
    detail = api.get(f"/api/runs/{group_id}/").json()
    assert (detail["priority"], detail["trigger"], detail["status"]) == ("high", "manual", "scheduled")

    group = wait_for_group_closed(group_id, timeout=40)
    assert group.status == "completed"
    started = min(JobItem.objects.filter(group=group).values_list("started_at", flat=True))
    assert run_at <= started < run_at + timedelta(seconds=30)
    assert api.get(f"/api/runs/{group_id}/status/").json()["response"]["runAt"]


def test_delayed_run_survives_the_loss_of_every_process_and_of_redis(user, consumers, redis_url) -> None:
    import redis

    workspace = workspace_with_prompts(user=user, prompts=2, providers=["claude"])
    group = job_group_submit(workspace=workspace, user=user, run_at=datetime.now(UTC) + timedelta(seconds=2)).job_group
    redis.Redis.from_url(redis_url).flushall()  # nothing of it lives only in Redis
    time.sleep(2)
    consumers.start("claude", workers=2, AGENT_SCHEDULE_TICK_SECONDS="1")
    assert wait_for_group_closed(group.id, timeout=40).status == "completed"


def test_delayed_run_can_be_cancelled_and_never_reaches_a_queue(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "claude"])
    run_at = datetime.now(UTC) + timedelta(hours=1)
    submitted = api.post(f"/api/workspaces/{workspace.id}/runs/", {"run_at": run_at.isoformat()}, format="json")
    group_id = submitted.json()["jobGroupId"]

    cancelled = api.post(f"/api/runs/{group_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled_items"] == 6
    assert job_groups_release_due(now=run_at + timedelta(minutes=1)) == 0
    group = JobGroup.objects.get(id=group_id)
    assert group.status == "cancelled" and group.finished_at is not None
    assert queue_length("chatgpt") == 0 and queue_length("claude") == 0
    assert api.get(f"/api/runs/{group_id}/status/").json()["response"]["cancelled"] is True


def test_run_at_in_the_past_runs_now(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    past = datetime.now(UTC) - timedelta(minutes=5)
    body = api.post(f"/api/workspaces/{workspace.id}/runs/", {"run_at": past.isoformat()}, format="json").json()
    assert body["status"] == "queued"
    assert JobGroup.objects.get(id=body["jobGroupId"]).status == "queued"
    assert queue_length("chatgpt") == 1


@pytest.mark.parametrize("run_at", ["tomorrow", "2025-13-01T00:00:00Z", 12])
def test_malformed_run_at_is_400_naming_the_field(api, user, run_at) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    response = api.post(f"/api/workspaces/{workspace.id}/runs/", {"run_at": run_at}, format="json")
    assert response.status_code == 400
    assert "run_at" in response.json()


def test_run_list_shows_priority_trigger_and_run_at(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    api.post(f"/api/workspaces/{workspace.id}/runs/", {"priority": "low"}, format="json")
    listed = api.get(f"/api/workspaces/{workspace.id}/runs/").json()["results"][0]
    assert (listed["priority"], listed["trigger"], listed["run_at"]) == ("low", "manual", None)
