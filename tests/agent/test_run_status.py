"""The status endpoint answers from the cache without SQL, and follows a run's closing at once."""
from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.models import JobGroup
from agent.services.closing import job_group_cancel, job_group_fail
from agent.services.submit import job_group_submit
from tests.factories import workspace_with_prompts
from workspaces.access import member_of_cache_key

pytestmark = pytest.mark.django_db(transaction=True)


def test_status_of_a_completed_run_costs_no_sql_once_read(api, django_user_model) -> None:
    call_command("bench_fixture", "--days", "1", "--prompts", "2", "--big-run-answers", "0", "--username", "alice",
                 stdout=io.StringIO())
    run = JobGroup.objects.get()
    cache.delete(member_of_cache_key(django_user_model.objects.get(username="alice").id))  # setup's change mark, expired
    first = api.get(f"/api/runs/{run.id}/status/")
    with CaptureQueriesContext(connection) as queries:
        again = api.get(f"/api/runs/{run.id}/status/")
    assert first.json() == again.json() and again.json()["response"]["stats"]["actualResponses"] == 8
    assert len(queries) == 0


def test_status_shows_a_cancel_at_once(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=2), user=user).job_group
    assert api.get(f"/api/runs/{group.id}/status/").json()["status"] == "pending"
    job_group_cancel(group=group)
    body = api.get(f"/api/runs/{group.id}/status/").json()
    assert body["status"] == "completed" and body["response"]["cancelled"] is True
    assert body["response"]["stats"]["cancelledResponses"] == 8


def test_status_shows_a_failed_run_at_once_even_while_its_live_object_says_pending(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=2), user=user).job_group
    assert api.get(f"/api/runs/{group.id}/status/").json()["status"] == "pending"  # the run's entry is now cached
    job_group_fail(group_id=group.id, error="deadline exceeded")
    body = api.get(f"/api/runs/{group.id}/status/").json()
    assert body["status"] == "completed" and "deadline exceeded" in body["response"]["error"]


def test_status_etag_gives_304_for_an_unchanged_run(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=1), user=user).job_group
    etag = api.get(f"/api/runs/{group.id}/status/")["ETag"]
    assert api.get(f"/api/runs/{group.id}/status/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert api.get(f"/api/runs/{str(group.id).upper()}/status/", HTTP_IF_NONE_MATCH=etag).status_code == 304
