"""Submit a group through the API and let real consumers run it to the end."""
from __future__ import annotations

import pytest
from django.db.models import Count

from agent.models import JobGroup, JobGroupProvider, JobItem
from tests.factories import ALL_PROVIDERS, wait_for_group_closed, wait_for_status, workspace_with_prompts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]


def _counts_from_rows(group_id: str) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for row in JobItem.objects.filter(group_id=group_id).values("provider", "status").annotate(n=Count("id")):
        counts.setdefault(row["provider"], {})[row["status"]] = row["n"]
    return counts


def test_group_runs_to_completion_and_progress_matches_rows(api, user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=25)
    consumers.start_all(workers=4)

    response = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    group_id = response.json()["jobGroupId"]

    seen_update_ids = []
    body = wait_for_status(api, group_id, logs=consumers.logs)
    progress = body["response"]
    seen_update_ids.append(progress["updateId"])

    rows = _counts_from_rows(group_id)
    assert progress["status"] == "completed"
    assert progress["providers"] == dict.fromkeys(ALL_PROVIDERS, "completed")
    assert progress["results"] == {p: rows[p].get("ok", 0) for p in ALL_PROVIDERS}
    assert progress["results"] == dict.fromkeys(ALL_PROVIDERS, 25)
    assert progress["failed"] == dict.fromkeys(ALL_PROVIDERS, 0)
    assert progress["stats"] == {
        "totalPrompts": 25,
        "expectedResponses": 100,
        "samples": 1,
        "actualResponses": 100,
        "failedResponses": 0,
        "cancelledResponses": 0,
    }
    assert "error" not in progress and "cancelled" not in progress

    group = wait_for_group_closed(group_id)
    assert group.status == JobGroup.Status.COMPLETED
    assert group.progress["stats"] == progress["stats"]
    assert group.progress["updateId"] >= progress["updateId"]
    assert set(JobGroupProvider.objects.filter(group=group).values_list("status", flat=True)) == {"completed"}

    # Every answer, page by page: 100 distinct items, each with text, sources and the simulated mark.
    seen = set()
    url = f"/api/runs/{group_id}/answers/?page_size=30"
    pages = 0
    while url:
        page = api.get(url).json()
        pages += 1
        assert page["count"] == 100
        for answer in page["results"]:
            assert answer["status"] == "ok"
            assert answer["backend"] == "simulated"
            assert answer["text"].startswith("[Simulated")
            assert answer["sources"] and {"url", "title", "domain"} <= set(answer["sources"][0])
            assert answer["attempts"] == 1
            assert answer["usage"]["total_tokens"] > 0
            seen.add((answer["provider"], answer["prompt"]))
        url = page["next"]
    assert pages == 4
    assert len(seen) == 100


def test_failing_provider_ends_failed_and_group_still_completes(api, user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=10)
    consumers.start_all(workers=4, AGENT_SIMULATED_FAILURE_RATE="gemini=1.0")

    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    progress = wait_for_status(api, group_id, logs=consumers.logs)["response"]

    assert progress["providers"] == {"chatgpt": "completed", "perplexity": "completed", "gemini": "failed", "claude": "completed"}
    assert progress["failed"] == {"chatgpt": 0, "perplexity": 0, "gemini": 10, "claude": 0}
    assert progress["stats"]["actualResponses"] == 30
    assert progress["stats"]["failedResponses"] == 10
    assert "gemini" in progress["error"] and "simulated failure" in progress["error"]
    group = wait_for_group_closed(group_id)
    assert group.status == JobGroup.Status.COMPLETED
    gemini = JobGroupProvider.objects.get(group=group, provider="gemini")
    assert gemini.status == "failed" and "simulated failure" in gemini.error
    failed = api.get(f"/api/runs/{group_id}/answers/?provider=gemini&status=failed").json()
    assert failed["count"] == 10
    assert all("simulated failure" in a["error"] for a in failed["results"])
