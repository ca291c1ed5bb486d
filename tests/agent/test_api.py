"""The HTTP API's answers to good input, bad input and other people's ids (no consumers needed)."""
from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from agent.models import JobGroup, JobItem
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from tests.factories import MembershipFactory, PromptFactory, WorkspaceFactory, workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_workspace_makes_creator_a_member(api, user) -> None:
    response = api.post("/api/workspaces/", {"name": "Acme", "enabled_providers": ["chatgpt", "gemini"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Acme" and body["enabled_providers"] == ["chatgpt", "gemini"]
    listed = api.get("/api/workspaces/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]
    assert api.get(f"/api/workspaces/{body['id']}/").json()["name"] == "Acme"


def test_create_workspace_with_unknown_provider_names_it(api) -> None:
    response = api.post("/api/workspaces/", {"name": "Acme", "enabled_providers": ["chatgpt", "bard", "grok"]}, format="json")
    assert response.status_code == 400
    message = response.json()["enabled_providers"][0]
    assert "bard" in message and "grok" in message and "chatgpt, perplexity" in message


def test_create_workspace_without_providers_is_400(api) -> None:
    response = api.post("/api/workspaces/", {"name": "Acme", "enabled_providers": []}, format="json")
    assert response.status_code == 400
    assert "at least one provider" in response.json()["enabled_providers"][0]


def test_malformed_json_and_wrong_types_are_400(api) -> None:
    assert api.post("/api/workspaces/", "{not json", content_type="application/json").status_code == 400
    response = api.post("/api/workspaces/", {"name": ["x"], "enabled_providers": "chatgpt"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"name", "enabled_providers"}


def test_patch_workspace_providers(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1)
    response = api.patch(f"/api/workspaces/{workspace.id}/", {"enabled_providers": ["claude"]}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled_providers"] == ["claude"]
    assert api.patch(f"/api/workspaces/{workspace.id}/", {"enabled_providers": ["x"]}, format="json").status_code == 400


def test_prompts_create_list_and_deactivate(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0)
    created = api.post(f"/api/workspaces/{workspace.id}/prompts/", {"text": "Best CRM for startups?"}, format="json")
    assert created.status_code == 201
    prompt_id = created.json()["id"]
    assert api.get(f"/api/workspaces/{workspace.id}/prompts/").json()["count"] == 1
    patched = api.patch(f"/api/prompts/{prompt_id}/", {"is_active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["is_active"] is False
    assert api.post(f"/api/workspaces/{workspace.id}/prompts/", {"text": ""}, format="json").status_code == 400
    assert api.post(f"/api/workspaces/{workspace.id}/prompts/", {"text": "x" * 4001}, format="json").status_code == 400


def test_submit_empty_workspace_is_empty_not_error(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0)
    response = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert response.status_code == 200
    assert response.json() == {"status": "empty"}
    assert not JobGroup.objects.exists()


def test_submit_only_inactive_prompts_is_empty(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0)
    PromptFactory(workspace=workspace, is_active=False)
    assert api.post(f"/api/workspaces/{workspace.id}/runs/").json() == {"status": "empty"}


def test_submit_workspace_without_providers_is_400(api, user) -> None:
    workspace = WorkspaceFactory(enabled_providers=[])
    MembershipFactory(user=user, workspace=workspace)
    PromptFactory(workspace=workspace)
    response = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert response.status_code == 400
    assert "no enabled providers" in response.json()["detail"]
    assert not JobGroup.objects.exists()


def test_submit_creates_one_item_per_provider_and_prompt(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "claude"])
    PromptFactory(workspace=workspace, is_active=False)
    response = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert response.status_code == 202
    group = JobGroup.objects.get(id=response.json()["jobGroupId"])
    assert group.expected_responses == 6 and group.total_prompts == 3 and group.providers == ["chatgpt", "claude"]
    assert JobItem.objects.filter(group=group, status="queued").count() == 6
    status = api.get(f"/api/runs/{group.id}/status/").json()
    assert status["status"] == "pending"
    assert status["response"]["providers"] == {"chatgpt": "pending", "claude": "pending"}
    assert status["response"]["stats"]["expectedResponses"] == 6
    detail = api.get(f"/api/runs/{group.id}/").json()
    assert [p["provider"] for p in detail["group_providers"]] == ["chatgpt", "claude"]
    listed = api.get(f"/api/workspaces/{workspace.id}/runs/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == str(group.id)


def test_runs_are_listed_newest_first(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1)
    first = job_group_submit(workspace=workspace, user=user).job_group
    second = job_group_submit(workspace=workspace, user=user).job_group
    ids = [g["id"] for g in api.get(f"/api/workspaces/{workspace.id}/runs/").json()["results"]]
    assert ids == [str(second.id), str(first.id)]


@pytest.mark.parametrize("group_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_status_of_unknown_or_malformed_group_is_404(api, group_id) -> None:
    for suffix in ("status/", "", "answers/"):
        response = api.get(f"/api/runs/{group_id}/{suffix}")
        assert response.status_code == 404, (suffix, response.content)
        assert response.json() == {"detail": "Run not found."}


def test_another_users_workspace_group_and_answers_are_404(api, user, stranger_api) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2)
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    prompt_id = workspace.prompts.first().id
    for method, url in [
        ("get", f"/api/workspaces/{workspace.id}/"),
        ("patch", f"/api/workspaces/{workspace.id}/"),
        ("get", f"/api/workspaces/{workspace.id}/prompts/"),
        ("post", f"/api/workspaces/{workspace.id}/prompts/"),
        ("get", f"/api/workspaces/{workspace.id}/runs/"),
        ("post", f"/api/workspaces/{workspace.id}/runs/"),
        ("patch", f"/api/prompts/{prompt_id}/"),
        ("get", f"/api/runs/{group_id}/"),
        ("get", f"/api/runs/{group_id}/status/"),
        ("get", f"/api/runs/{group_id}/answers/"),
    ]:
        response = getattr(stranger_api, method)(url, {"text": "x", "is_active": False, "name": "x"}, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
    assert stranger_api.get("/api/workspaces/").json()["count"] == 0
    assert JobGroup.objects.count() == 1


def test_anonymous_requests_are_refused() -> None:
    client = APIClient()
    assert client.get("/api/workspaces/").status_code in (401, 403)
    assert client.get(f"/api/runs/{uuid.uuid4()}/status/").status_code in (401, 403)


def test_token_auth(user) -> None:
    client = APIClient()
    response = client.post("/api/auth/token/", {"username": "alice", "password": "correct horse battery staple"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/workspaces/").status_code == 200
    bad = APIClient().post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert bad.status_code == 400


def test_answers_filters_validate(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2)
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    assert api.get(f"/api/runs/{group_id}/answers/?provider=chatgpt").json()["count"] == 2
    assert api.get(f"/api/runs/{group_id}/answers/?status=queued").json()["count"] == 8
    assert api.get(f"/api/runs/{group_id}/answers/?provider=bard").status_code == 400
    assert api.get(f"/api/runs/{group_id}/answers/?status=weird").status_code == 400
    assert api.get(f"/api/runs/{group_id}/answers/?page=99").status_code == 404


def test_same_idempotency_key_returns_the_same_group(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2)
    first = api.post(f"/api/workspaces/{workspace.id}/runs/", HTTP_IDEMPOTENCY_KEY="run-2026-11-25")
    second = api.post(f"/api/workspaces/{workspace.id}/runs/", HTTP_IDEMPOTENCY_KEY="run-2026-11-25")
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["jobGroupId"] == second.json()["jobGroupId"]
    other = api.post(f"/api/workspaces/{workspace.id}/runs/", HTTP_IDEMPOTENCY_KEY="another")
    assert other.status_code == 202 and other.json()["jobGroupId"] != first.json()["jobGroupId"]
    assert JobGroup.objects.count() == 2
    assert JobItem.objects.count() == 16


def test_idempotency_key_expires_after_24_hours(api, user) -> None:
    from datetime import timedelta

    from django.utils import timezone

    workspace = workspace_with_prompts(user=user, prompts=1)
    first = api.post(f"/api/workspaces/{workspace.id}/runs/", HTTP_IDEMPOTENCY_KEY="daily").json()["jobGroupId"]
    JobGroup.objects.filter(id=first).update(created_at=timezone.now() - timedelta(hours=25))
    again = api.post(f"/api/workspaces/{workspace.id}/runs/", HTTP_IDEMPOTENCY_KEY="daily")
    assert again.status_code == 202 and again.json()["jobGroupId"] != first
    assert api.post(f"/api/workspaces/{workspace.id}/runs/", HTTP_IDEMPOTENCY_KEY="k" * 300).status_code == 400


def test_status_etag_answers_304_while_nothing_changed(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    first = api.get(f"/api/runs/{group.id}/status/")
    etag = first["ETag"]
    assert etag and str(first.json()["response"]["updateId"]) in etag
    unchanged = api.get(f"/api/runs/{group.id}/status/", HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and not unchanged.content
    item = JobItem.objects.filter(group=group).first()
    from agent.services.items import answer_record

    answer_record(item=QueuedItem.of(item), backend="simulated", error="x")
    changed = api.get(f"/api/runs/{group.id}/status/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.json()["response"]["stats"]["failedResponses"] == 1
    assert changed["ETag"] != etag


def test_submitted_items_are_queued_snapshots_of_active_prompts(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["gemini", "claude"])
    inactive = PromptFactory(workspace=workspace, is_active=False)
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    group = JobGroup.objects.get(id=group_id)
    items = list(JobItem.objects.filter(group=group).select_related("prompt"))
    assert len(items) == 6 and inactive.id not in {i.prompt_id for i in items}
    for item in items:
        assert item.prompt_text == item.prompt.text
        assert (item.status, item.attempts, item.sources, item.usage, item.text, item.error) == ("queued", 0, [], {}, "", "")
        assert item.next_attempt_at == group.created_at
    answers = api.get(f"/api/runs/{group_id}/answers/").json()["results"]
    assert {a["provider"] for a in answers} == {"gemini", "claude"}
    assert all(a["sources"] == [] and a["usage"] == {} for a in answers)
