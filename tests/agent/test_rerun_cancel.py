"""Re-run and cancel through the API: the same services the admin and the CLI call."""
from __future__ import annotations

import csv
import io

import pytest

from agent.models import JobGroup, JobItem
from agent.services.items import answer_record
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from tests.factories import wait_for_group_closed, wait_for_status, workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)


def test_cancel_before_start_cancels_every_item_and_stops_pollers(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "gemini"])
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    response = api.post(f"/api/runs/{group_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["cancelled_items"] == 6

    status = api.get(f"/api/runs/{group_id}/status/").json()
    assert status["status"] == "completed"
    assert status["response"]["cancelled"] is True
    assert status["response"]["stats"]["cancelledResponses"] == 6
    group = JobGroup.objects.get(id=group_id)
    assert group.status == "cancelled" and group.finished_at is not None
    assert group.progress["cancelled"] is True

    again = api.post(f"/api/runs/{group_id}/cancel/")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]


def test_cancel_keeps_answers_already_stored(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["claude"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    first = JobItem.objects.filter(group=group).order_by("id").first()
    answer_record(item=QueuedItem.of(first), backend="simulated", error="timeout")
    api.post(f"/api/runs/{group.id}/cancel/")
    statuses = sorted(JobItem.objects.filter(group=group).values_list("status", flat=True))
    assert statuses == ["cancelled", "failed"]
    progress = api.get(f"/api/runs/{group.id}/status/").json()["response"]
    assert progress["stats"]["failedResponses"] == 1 and progress["stats"]["cancelledResponses"] == 1


def test_cancel_of_a_finished_group_is_409(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["claude"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    item = JobItem.objects.get(group=group)
    answer_record(item=QueuedItem.of(item), backend="simulated", error="x")
    response = api.post(f"/api/runs/{group.id}/cancel/")
    assert response.status_code == 409
    assert "already completed" in response.json()["detail"]


def test_rerun_only_failed_asks_exactly_the_unanswered_items(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "gemini"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    items = list(JobItem.objects.filter(group=group).order_by("id"))
    answer_record(item=QueuedItem.of(items[0]), backend="simulated", error="down")
    api.post(f"/api/runs/{group.id}/cancel/")  # the other five end cancelled

    response = api.post(f"/api/runs/{group.id}/rerun/", {"only_failed": True}, format="json")
    assert response.status_code == 202
    rerun = JobGroup.objects.get(id=response.json()["jobGroupId"])
    assert rerun.rerun_of_id == group.id
    assert rerun.expected_responses == 6
    assert set(JobItem.objects.filter(group=rerun).values_list("provider", "prompt_id")) == {
        (i.provider, i.prompt_id) for i in items
    }
    status = api.get(f"/api/runs/{rerun.id}/status/").json()["response"]
    assert status["stats"]["expectedResponses"] == 6


def test_rerun_full_uses_current_prompts_and_providers(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    workspace.enabled_providers = ["chatgpt", "claude"]
    workspace.save()
    response = api.post(f"/api/runs/{group.id}/rerun/", {"only_failed": False}, format="json")
    assert response.status_code == 202
    rerun = JobGroup.objects.get(id=response.json()["jobGroupId"])
    assert rerun.rerun_of_id == group.id and rerun.providers == ["chatgpt", "claude"] and rerun.expected_responses == 4


def test_rerun_only_failed_with_nothing_failed_is_empty(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    response = api.post(f"/api/runs/{group.id}/rerun/", {"only_failed": True}, format="json")
    assert response.status_code == 200 and response.json() == {"status": "empty"}
    assert api.post(f"/api/runs/{group.id}/rerun/", {"only_failed": "maybe"}, format="json").status_code == 400


@pytest.mark.consumers
def test_cancel_mid_run_lets_running_items_finish(api, user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=30, providers=["chatgpt", "claude"])
    consumers.start("chatgpt", workers=2, AGENT_SIMULATED_LATENCY_MS="300")
    consumers.start("claude", workers=2, AGENT_SIMULATED_LATENCY_MS="300")
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    while not JobItem.objects.filter(group_id=group_id, status="ok").exists():
        pass
    cancelled = api.post(f"/api/runs/{group_id}/cancel/").json()
    body = wait_for_status(api, group_id, logs=consumers.logs)
    group = wait_for_group_closed(group_id)
    stats = body["response"]["stats"]
    assert body["response"]["cancelled"] is True
    assert stats["cancelledResponses"] == cancelled["cancelled_items"] > 0
    assert stats["actualResponses"] + stats["failedResponses"] + stats["cancelledResponses"] == 60
    assert stats["actualResponses"] == JobItem.objects.filter(group_id=group_id, status="ok").count()
    assert group.status == "cancelled"
    assert not JobItem.objects.filter(group_id=group_id, status__in=JobItem.UNFINISHED).exists()


def test_answers_export_as_csv(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    item = JobItem.objects.filter(group=group).first()
    answer_record(item=QueuedItem.of(item), backend="simulated", error='said "no", twice')
    response = api.get(f"/api/runs/{group.id}/answers/?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 2
    assert {r["status"] for r in rows} == {"failed", "queued"}
    assert any(r["error"] == 'said "no", twice' for r in rows)
    assert api.get("/api/runs/00000000-0000-0000-0000-000000000000/answers/?format=csv").status_code == 404
