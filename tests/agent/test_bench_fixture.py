"""`manage.py bench_fixture` builds finished runs that pages, the API and exports read like real ones."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from agent.models import JobGroup, JobGroupProvider, JobItem
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db(transaction=True)


def test_fixture_builds_daily_runs_of_every_prompt_on_every_provider(django_user_model) -> None:
    out = io.StringIO()
    call_command("bench_fixture", "--days", "3", "--prompts", "5", "--big-run-answers", "40", "--filler-workspaces", "2",
                 "--filler-runs", "2", "--filler-prompts", "3", stdout=out)
    year = Workspace.objects.get(name__startswith="Year of runs")
    runs = list(JobGroup.objects.filter(workspace=year).order_by("created_at"))
    assert len(runs) == 3
    # One run a day, the newest today, each finished with every answer ok and its final progress mirrored.
    assert [(b.created_at - a.created_at).days for a, b in zip(runs, runs[1:], strict=False)] == [1, 1]
    for run in runs:
        assert run.status == JobGroup.Status.COMPLETED and run.expected_responses == 20
        assert run.progress["stats"]["actualResponses"] == 20 and run.progress["status"] == "completed"
        assert JobItem.objects.filter(group=run, status=JobItem.Status.OK).count() == 20
        assert set(JobGroupProvider.objects.filter(group=run).values_list("status", flat=True)) == {"completed"}
    item = JobItem.objects.filter(group=runs[0]).first()
    assert item.text.startswith("[Simulated answer]") and item.backend == "simulated"
    assert item.sources and {"url", "title", "domain", "cited"} <= set(item.sources[0])
    assert item.usage["total_tokens"] == item.usage["prompt_tokens"] + item.usage["completion_tokens"]
    # Unique per (run, provider, prompt), like a real run.
    assert JobItem.objects.filter(group__workspace=year).values("group", "provider", "prompt").distinct().count() == 60
    big = JobGroup.objects.get(workspace__name__startswith="One big run")
    assert big.expected_responses == 40 and JobItem.objects.filter(group=big).count() == 40
    assert JobItem.objects.count() == 60 + 40 + 2 * 2 * 3 * 4
    assert "60 answers" in out.getvalue()


def test_fixture_runs_read_through_the_api_as_their_owner(django_user_model) -> None:
    call_command("bench_fixture", "--days", "2", "--prompts", "3", "--big-run-answers", "0", stdout=io.StringIO())
    owner = django_user_model.objects.get(username="bench")
    api = APIClient()
    api.force_authenticate(owner)
    run = JobGroup.objects.order_by("-created_at").first()
    status = api.get(f"/api/runs/{run.id}/status/").json()
    assert status["status"] == "completed" and status["response"]["stats"]["actualResponses"] == 12
    answers = api.get(f"/api/runs/{run.id}/answers/").json()
    assert answers["count"] == 12 and all(a["status"] == "ok" for a in answers["results"])


def test_fixture_mentions_are_the_real_analysis_of_its_answers(django_user_model) -> None:
    from tests.visibility.findings import brand_findings
    from visibility.models import Brand

    call_command("bench_fixture", "--days", "1", "--prompts", "4", "--big-run-answers", "0", "--mentions", stdout=io.StringIO())
    assert Brand.objects.count() == 8 and Brand.objects.filter(is_own=True).count() == 1
    item = JobItem.objects.filter(text__contains="HubSpot").first()
    hubspot = brand_findings(item)[Brand.objects.get(name="HubSpot").id]
    assert hubspot["mentioned"] and hubspot["first_offset"] == item.text.index("HubSpot")


def test_fixture_bulk_mentions_read_the_same_through_the_trend_and_the_run(django_user_model) -> None:
    call_command("bench_fixture", "--days", "2", "--prompts", "5", "--big-run-answers", "40", "--mentions-bulk",
                 stdout=io.StringIO())
    api = APIClient()
    api.force_authenticate(django_user_model.objects.get(username="bench"))
    year = Workspace.objects.get(name__startswith="Year of runs")
    trend = api.get(f"/api/workspaces/{year.id}/visibility/?provider=all").json()
    assert trend["reanalysis_pending"] is False and [p["answers"] for p in trend["series"]] == [20, 20]
    for point in trend["series"]:
        run = api.get(f"/api/runs/{point['run']}/visibility/").json()
        # The run's figures are counted from the answers' findings, the trend's from the figures written at close.
        assert [(b["name"], b["mentioned"], b["cited"]) for b in run["brands"]] == [
            (b["name"], b["mentioned"], b["cited"]) for b in point["brands"]
        ]
        assert sum(b["mentioned"] for b in run["brands"]) > 0 and run["top_domains"]
    big = JobGroup.objects.get(workspace__name__startswith="One big run")
    body = api.get(f"/api/runs/{big.id}/visibility/").json()
    assert body["answers"] == 40 and len(body["by_prompt"]) == 10 and len(body["brands"]) == 8


def test_filler_only_adds_other_tenants_runs_beside_the_year(django_user_model) -> None:
    call_command("bench_fixture", "--days", "2", "--prompts", "3", "--big-run-answers", "0", stdout=io.StringIO())
    out = io.StringIO()
    call_command("bench_fixture", "--filler-only", "--filler-workspaces", "3", "--filler-runs", "2",
                 "--filler-prompts", "5", stdout=out)
    assert "3 filler workspaces, 120 answers" in out.getvalue()
    fillers = Workspace.objects.filter(name__startswith="Filler")
    assert fillers.count() == 3
    # Other tenants: the bench user reads only its own workspace, the fillers belong to someone else.
    owner = django_user_model.objects.get(username="bench")
    assert list(owner.workspaces.values_list("name", flat=True)) == ["Year of runs (2 days)"]
    api = APIClient()
    api.force_authenticate(owner)
    for filler in fillers:
        runs = list(JobGroup.objects.filter(workspace=filler).order_by("created_at"))
        assert [(b.created_at - a.created_at).days for a, b in zip(runs, runs[1:], strict=False)] == [1]
        assert api.get(f"/api/runs/{runs[0].id}/status/").status_code == 404
        for run in runs:
            assert run.status == JobGroup.Status.COMPLETED and run.progress["stats"]["actualResponses"] == 20
            answered = JobItem.objects.filter(group=run, status=JobItem.Status.OK)
            assert answered.values("provider", "prompt").distinct().count() == 20
            assert set(JobGroupProvider.objects.filter(group=run).values_list("status", flat=True)) == {"completed"}
    tenant = django_user_model.objects.get(username="bench-tenants")
    api.force_authenticate(tenant)
    answers = api.get(f"/api/runs/{runs[-1].id}/answers/").json()
    assert answers["count"] == 20 and answers["results"][0]["text"].startswith("[Simulated answer]")
    assert JobItem.objects.count() == 2 * 3 * 4 + 120
    # Each tenant runs at its own time of day: lists ordered by creation never meet a tie.
    created = list(JobGroup.objects.exclude(workspace__name__startswith="One big run").values_list("created_at", flat=True))
    assert len(set(created)) == len(created)
