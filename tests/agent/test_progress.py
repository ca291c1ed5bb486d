"""The progress object: exact under concurrency, idempotent, and rebuilt from the database when lost."""
from __future__ import annotations

import time

import pytest
import redis
from django.db.models import Count

from agent import progress
from agent.models import JobGroup, JobItem
from agent.queues import queues_reset
from agent.services.items import answer_record
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from tests.factories import ALL_PROVIDERS, UserFactory, wait_for_group_closed, wait_for_status, workspace_with_prompts
from tests.redis_server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _expected_from_rows(group: JobGroup) -> dict:
    rows = {p: {} for p in group.providers}
    for row in JobItem.objects.filter(group=group).values("provider", "status").annotate(n=Count("id")):
        rows[row["provider"]][row["status"]] = row["n"]
    return {
        "results": {p: rows[p].get("ok", 0) for p in group.providers},
        "failed": {p: rows[p].get("failed", 0) for p in group.providers},
        "actual": sum(r.get("ok", 0) for r in rows.values()),
        "failedResponses": sum(r.get("failed", 0) for r in rows.values()),
    }


def test_recording_the_same_item_twice_counts_once(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    item = JobItem.objects.filter(group=group).first()
    first = answer_record(item=QueuedItem.of(item), backend="simulated", error="boom")
    second = answer_record(item=QueuedItem.of(item), backend="simulated", error="boom")
    assert (first, second) == (True, False)
    # Even if a worker got past the database guard, the Redis side counts an item once.
    again = progress.progress_item_finished(group_id=group.id, item_id=item.id, provider="chatgpt", status="failed")
    assert again.counted is False
    live = progress.progress_read_live(group.id)
    assert live["failed"] == {"chatgpt": 1}
    assert live["stats"]["failedResponses"] == 1
    assert live["providers"] == {"chatgpt": "processing"}


def test_missing_key_is_rebuilt_from_rows_not_recreated_partially(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "claude"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    items = list(JobItem.objects.filter(group=group).order_by("id"))
    answer_record(item=QueuedItem.of(items[0]), backend="simulated", error="x")
    redis.Redis.from_url(_url()).delete(progress.progress_key(group.id))
    # The next update finds the key gone and rebuilds from every row, its own included.
    answer_record(item=QueuedItem.of(items[1]), backend="simulated", error="y")
    live = progress.progress_read_live(group.id)
    assert live["stats"]["failedResponses"] == 2
    assert live["stats"]["expectedResponses"] == 6
    assert sum(live["failed"].values()) == 2
    ttl = redis.Redis.from_url(_url()).ttl(progress.progress_key(group.id))
    assert 0 < ttl <= 3600


def _url() -> str:
    from django.conf import settings

    return settings.REDIS_URL


def test_update_id_never_decreases_and_ttl_is_refreshed(user, settings) -> None:
    workspace = workspace_with_prompts(user=user, prompts=4, providers=["gemini"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.expire(progress.progress_key(group.id), 10)
    update_ids = [progress.progress_read_live(group.id)["updateId"]]
    for item in JobItem.objects.filter(group=group):
        answer_record(item=QueuedItem.of(item), backend="simulated", error="no")
        update_ids.append(progress.progress_read_live(group.id)["updateId"])
    assert update_ids == sorted(update_ids) and len(set(update_ids)) == len(update_ids)
    assert client.ttl(progress.progress_key(group.id)) > 10
    final = progress.progress_read_live(group.id)
    assert final["status"] == "completed" and final["providers"] == {"gemini": "failed"}
    assert JobGroup.objects.get(id=group.id).status == "completed"


def test_submit_while_redis_is_down_is_503_and_group_ends_failed(api, user, settings) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    queues_reset()
    try:
        response = api.post(f"/api/workspaces/{workspace.id}/runs/")
    finally:
        settings.REDIS_URL = _redis_url_of_session()
        queues_reset()
    assert response.status_code == 503
    assert "Redis" in response.json()["detail"]
    group = JobGroup.objects.get()
    assert group.status == "failed" and "unavailable" in group.error
    assert not JobItem.objects.filter(group=group, status__in=JobItem.UNFINISHED).exists()
    # The status API answers from the database: a finished, failed group, not an endless pending.
    status = api.get(f"/api/runs/{group.id}/status/").json()
    assert status["status"] == "completed"
    assert status["response"]["stats"]["failedResponses"] == 8


def _redis_url_of_session() -> str:
    import os

    return os.environ["REDIS_URL"]


@pytest.mark.consumers
def test_progress_key_deleted_mid_group_and_after_completion(api, user, consumers, settings) -> None:
    workspace = workspace_with_prompts(user=user, prompts=20)
    consumers.start_all(workers=2, AGENT_SIMULATED_LATENCY_MS="60")
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    deadline = time.monotonic() + 30
    while JobItem.objects.filter(group_id=group_id, status="ok").count() < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    client.delete(progress.progress_key(group_id))
    mid = api.get(f"/api/runs/{group_id}/status/").json()
    assert mid["status"] == "pending"
    assert 10 <= mid["response"]["stats"]["actualResponses"] < 80

    body = wait_for_status(api, group_id, logs=consumers.logs)
    group = wait_for_group_closed(group_id)
    assert body["response"]["stats"]["actualResponses"] == 80
    assert body["response"]["results"] == dict.fromkeys(ALL_PROVIDERS, 20)

    client.delete(progress.progress_key(group_id))
    after = api.get(f"/api/runs/{group_id}/status/").json()
    assert after["status"] == "completed"
    assert after["response"] == group.progress
    assert after["response"]["stats"]["actualResponses"] == 80


@pytest.mark.consumers
def test_many_groups_at_once_keep_exact_counts(api, consumers) -> None:
    """20 groups x 4 providers x 25 prompts at once, 8 workers a queue: every counter equals the rows.

    Run against a read-modify-write progress updater, this test loses counts and times out
    with groups stuck pending; with atomic Lua updates every group completes exactly.
    """
    users = UserFactory.create_batch(4)
    workspaces = [workspace_with_prompts(user=users[i % 4], prompts=25) for i in range(20)]
    consumers.start_all(workers=8, AGENT_SIMULATED_LATENCY_MS="0", AGENT_SIMULATED_FAILURE_RATE="0.1")
    from rest_framework.test import APIClient

    group_ids = []
    for i, workspace in enumerate(workspaces):
        client = APIClient()
        client.force_authenticate(users[i % 4])
        response = client.post(f"/api/workspaces/{workspace.id}/runs/")
        assert response.status_code == 202
        group_ids.append((client, response.json()["jobGroupId"]))

    for client, group_id in group_ids:
        body = wait_for_status(client, group_id, timeout=120, logs=consumers.logs)
        group = wait_for_group_closed(group_id)
        expected = _expected_from_rows(group)
        progress_object = body["response"]
        assert progress_object["results"] == expected["results"]
        assert progress_object["failed"] == expected["failed"]
        assert progress_object["stats"]["actualResponses"] == expected["actual"]
        assert progress_object["stats"]["failedResponses"] == expected["failedResponses"]
        assert expected["actual"] + expected["failedResponses"] == 100
        assert group.progress["stats"] == progress_object["stats"]
        assert not JobItem.objects.filter(group=group, status__in=JobItem.UNFINISHED).exists()
