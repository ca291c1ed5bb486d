"""A run's answers page through keyset cursors: every answer once, in order, with a cheap exact count."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.models import JobItem
from agent.services.submit import job_group_submit
from tests.factories import workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)


def _all_pages(api, url: str) -> list[dict]:
    pages = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        url = pages[-1]["next"]
    return pages


def test_cursor_pages_return_every_answer_once_in_run_order(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=13), user=user).job_group
    # 7 a page never lines up with the 4 answers of a prompt: positions are shared across page edges.
    pages = _all_pages(api, f"/api/runs/{group.id}/answers/?page_size=7")
    ids = [a["id"] for page in pages for a in page["results"]]
    expected = list(JobItem.objects.filter(group=group).order_by("prompt_id", "provider", "id").values_list("id", flat=True))
    assert ids == expected and len(ids) == 52
    assert all(page["count"] == 52 for page in pages)
    assert "cursor=" in pages[0]["next"] and pages[0]["previous"] is None
    # Going back from the last page gives the page before it again.
    back = api.get(pages[-1]["previous"]).json()
    assert [a["id"] for a in back["results"]] == [a["id"] for a in pages[-2]["results"]]


def test_cursor_pages_keep_filters_and_count_within_them(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=9), user=user).job_group
    four_prompts = sorted({item.prompt_id for item in JobItem.objects.filter(group=group)})[:4]
    JobItem.objects.filter(group=group, provider="gemini", prompt_id__in=four_prompts).update(status=JobItem.Status.FAILED)
    pages = _all_pages(api, f"/api/runs/{group.id}/answers/?provider=gemini&page_size=2")
    assert [page["count"] for page in pages] == [9] * 5
    assert {a["provider"] for page in pages for a in page["results"]} == {"gemini"}
    assert all("provider=gemini" in page["next"] for page in pages[:-1])
    failed = _all_pages(api, f"/api/runs/{group.id}/answers/?status=failed&page_size=3")
    assert failed[0]["count"] == 4 and sum(len(p["results"]) for p in failed) == 4


def test_unfiltered_count_costs_no_count_query(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=5), user=user).job_group
    with CaptureQueriesContext(connection) as queries:
        body = api.get(f"/api/runs/{group.id}/answers/?page_size=3").json()
    assert body["count"] == 20
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


def test_numbered_pages_still_work(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=5), user=user).job_group
    second = api.get(f"/api/runs/{group.id}/answers/?page=2&page_size=8").json()
    assert second["count"] == 20 and len(second["results"]) == 8
    assert parse_qs(urlsplit(second["next"]).query)["page"] == ["3"]
    assert parse_qs(urlsplit(second["previous"]).query).get("page", ["1"]) == ["1"]


def test_bad_cursor_is_404_json(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=2), user=user).job_group
    response = api.get(f"/api/runs/{group.id}/answers/?cursor=not-a-cursor")
    assert response.status_code == 404 and "detail" in response.json()


def test_numbered_pages_read_the_rows_of_their_page_only_and_count_nothing(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=10), user=user).job_group
    expected = list(JobItem.objects.filter(group=group).order_by("prompt_id", "provider", "id").values_list("id", flat=True))
    with CaptureQueriesContext(connection) as queries:
        third = api.get(f"/api/runs/{group.id}/answers/?page=3&page_size=7").json()
    assert [a["id"] for a in third["results"]] == expected[14:21] and third["count"] == 40
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    last = api.get(f"/api/runs/{group.id}/answers/?page=last&page_size=7").json()
    assert [a["id"] for a in last["results"]] == expected[35:] and last["next"] is None
