"""Samples per run (expected responses, uniqueness, re-runs, API and CSV) and the wiring of visibility to
the agent: answers analysed when recorded, run figures written at close, brand edits re-analysed by the
sweep in real consumers without asking any provider again, failed analyses retried."""
from __future__ import annotations

import csv
import io
import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from agent.models import JobGroup, JobItem
from agent.services.items import answer_record
from agent.services.submit import job_group_rerun, job_group_submit
from agent.tasks import QueuedItem
from tests.factories import JobGroupFactory, JobItemFactory, workspace_with_prompts
from visibility.models import AnalysedAnswer, Brand, Mention, RunStat
from visibility.services.aggregates import job_group_visibility_aggregate
from visibility.services.sweep import visibility_sweep


@pytest.fixture
def sampled(user):
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "gemini"], name="Acme")
    workspace.samples_per_run = 3
    workspace.save()
    return workspace


@pytest.mark.django_db
def test_a_run_asks_every_prompt_and_provider_n_times(api, sampled) -> None:
    body = api.post(f"/api/workspaces/{sampled.id}/runs/").json()
    group = JobGroup.objects.get(id=body["jobGroupId"])
    assert (group.expected_responses, group.samples, group.total_prompts) == (12, 3, 2)
    keys = list(JobItem.objects.filter(group=group).values_list("provider", "prompt_id", "sample"))
    assert len(keys) == len(set(keys)) == 12
    assert sorted({k[2] for k in keys}) == [1, 2, 3]
    stats = api.get(f"/api/runs/{group.id}/status/").json()["response"]["stats"]
    assert (stats["expectedResponses"], stats["samples"]) == (12, 3)
    answers = api.get(f"/api/runs/{group.id}/answers/?page_size=100").json()["results"]
    assert sorted(a["sample"] for a in answers) == [1] * 4 + [2] * 4 + [3] * 4
    raw = b"".join(api.get(f"/api/runs/{group.id}/answers/?format=csv").streaming_content)
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert sorted(int(r["sample"]) for r in rows) == [1] * 4 + [2] * 4 + [3] * 4
    item = JobItem.objects.filter(group=group).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        JobItem.objects.create(group=group, provider=item.provider, prompt_id=item.prompt_id, sample=item.sample,
                               prompt_text="again")


@pytest.mark.django_db
def test_reruns_keep_the_original_sample_count_and_failed_samples(user, sampled) -> None:
    group = job_group_submit(workspace=sampled, user=user).job_group
    sampled.samples_per_run = 1
    sampled.save()
    full = job_group_rerun(group=group, user=user).job_group
    assert (full.samples, full.expected_responses) == (3, 12)
    failed = list(JobItem.objects.filter(group=group, provider="gemini").order_by("prompt_id", "sample")[1:3])
    JobItem.objects.filter(group=group).update(status=JobItem.Status.OK)
    JobItem.objects.filter(id__in=[i.id for i in failed]).update(status=JobItem.Status.FAILED)
    only_failed = job_group_rerun(group=group, user=user, only_failed=True).job_group
    assert only_failed.samples == 3 and only_failed.expected_responses == 2
    assert sorted(JobItem.objects.filter(group=only_failed).values_list("provider", "prompt_id", "sample")) == sorted(
        (i.provider, i.prompt_id, i.sample) for i in failed)


@pytest.mark.django_db
@pytest.mark.parametrize("value", [0, 11, "three"])
def test_samples_per_run_outside_one_to_ten_is_400_naming_it(api, sampled, value) -> None:
    response = api.patch(f"/api/workspaces/{sampled.id}/", {"samples_per_run": value}, format="json")
    assert response.status_code == 400 and "samples_per_run" in response.json()


@pytest.mark.django_db
def test_samples_per_run_is_a_workspace_field(api, sampled) -> None:
    assert api.get(f"/api/workspaces/{sampled.id}/").json()["samples_per_run"] == 3
    assert api.patch(f"/api/workspaces/{sampled.id}/", {"samples_per_run": 10}, format="json").json()[
        "samples_per_run"] == 10


@pytest.mark.django_db
def test_a_failing_analysis_never_costs_the_answer_and_the_sweep_retries_it(monkeypatch, user) -> None:
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"])
    Brand.objects.create(workspace=group.workspace, name="Acme", is_own=True)
    item = JobItemFactory(group=group, status=JobItem.Status.RUNNING, text="")

    def broken(**kwargs):
        raise RuntimeError("analysis bug")

    monkeypatch.setattr("visibility.services.analysis.answer_findings", broken)
    from agent.providers.base import Answer

    assert answer_record(item=QueuedItem.of(item), backend="simulated",
                         answer=Answer(text="Acme is good.", sources=[]))
    item.refresh_from_db()
    assert item.status == JobItem.Status.OK and item.text == "Acme is good."
    assert not AnalysedAnswer.objects.filter(item_id=item.id).exists()
    group.refresh_from_db()
    assert group.status == JobGroup.Status.COMPLETED
    monkeypatch.undo()
    # Recorded a minute ago (the sweep leaves the newest answers to their own analysis).
    JobItem.objects.filter(id=item.id).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    report = visibility_sweep()
    assert report.retried == 1 and report.runs_refreshed == 1
    assert Mention.objects.get(item_id=item.id).mentioned
    stat = RunStat.objects.get(group=group, provider="all")
    assert stat.answers == 1 and stat.brand_stats.get().mentioned == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.consumers
def test_run_through_consumers_is_analysed_and_a_brand_edit_is_reanalysed_without_asking_again(
    api, user, consumers
) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "perplexity"], name="Acme")
    workspace.samples_per_run = 2
    workspace.save()
    own = Brand.objects.create(workspace=workspace, name="Acme", domains=["acme.com"], is_own=True)
    rival = Brand.objects.create(workspace=workspace, name="Globex", domains=["globex.com"])
    consumers.start_all(workers=2, VISIBILITY_SWEEP_INTERVAL="1")
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    group = _closed_with_figures(group_id, consumers)
    ok = JobItem.objects.filter(group=group, status=JobItem.Status.OK)
    assert ok.count() == 12
    assert AnalysedAnswer.objects.filter(group=group).count() == 12
    assert Mention.objects.filter(group=group, mentioned=True).exists()  # simulated answers name the brands
    stat = RunStat.objects.get(group=group, provider="all")
    assert stat.answers == 12
    body = api.get(f"/api/runs/{group_id}/visibility/").json()
    assert body["answers"] == 12 and {b["name"] for b in body["brands"]} == {"Acme", "Globex"}
    before = {b["name"]: b["mentioned"] for b in body["brands"]}
    assert before["Acme"] == Mention.objects.filter(group=group, brand=own, mentioned=True).count()
    calls = dict(ok.values_list("id", "attempts"))

    # Every simulated answer says "commonly recommended": as an alias of Globex it is mentioned in all 12.
    response = api.patch(f"/api/brands/{rival.id}/", {"aliases": ["commonly recommended"]}, format="json")
    assert response.status_code == 200 and response.json()["reanalysis"] == "pending"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        trend = api.get(f"/api/workspaces/{workspace.id}/visibility/?provider=all").json()
        if not trend["reanalysis_pending"]:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"the brand edit was not re-analysed within 30 s\n{consumers.logs()}")
    # Once it no longer says pending, the run and the trend both show the edit.
    figures = {b["name"]: b for b in api.get(f"/api/runs/{group_id}/visibility/").json()["brands"]}
    assert figures["Globex"]["mentioned"] == 12
    assert {b["name"]: b["mentioned"] for b in trend["series"][0]["brands"]}["Globex"] == 12
    # Not one provider was asked again: same items, same attempts, no new run.
    assert dict(JobItem.objects.filter(group=group, status=JobItem.Status.OK).values_list("id", "attempts")) == calls
    assert JobGroup.objects.filter(workspace=workspace).count() == 1


def _closed_with_figures(group_id: str, consumers, timeout: float = 90) -> JobGroup:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group = JobGroup.objects.get(id=group_id)
        if group.status == JobGroup.Status.COMPLETED and RunStat.objects.filter(group=group).exists():
            return group
        time.sleep(0.3)
    pytest.fail(f"run {group_id} did not close with its figures\n{consumers.logs()}")


@pytest.mark.django_db
def test_a_closed_run_gets_its_figures_from_the_closing_signal(user, django_capture_on_commit_callbacks) -> None:
    from agent.services.closing import job_group_finalize

    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"])
    Brand.objects.create(workspace=group.workspace, name="Acme", is_own=True)
    JobItemFactory(group=group, text="Acme")
    assert not RunStat.objects.filter(group=group).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert job_group_finalize(group_id=group.id)
    assert RunStat.objects.get(group=group, provider="all").answers == 1
    job_group_visibility_aggregate(group=group)  # idempotent: replaced, not doubled
    assert RunStat.objects.filter(group=group).count() == 2
