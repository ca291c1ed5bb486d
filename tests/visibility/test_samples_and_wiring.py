"""Samples per run (expected responses, uniqueness, re-runs, API and CSV) and the wiring of visibility to
the agent: answers analysed when recorded, run figures written at close, brand edits re-analysed by the
sweep in real consumers without asking any provider again, failed analyses done again when the run's
figures are written (at its close, or by the sweep when the close wrote none)."""
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
from tests.visibility.findings import brand_findings, item_findings, item_raw_findings, mentioned_names
from visibility.models import Brand, RunStat
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


def _answer_recorded_with_a_broken_analysis(monkeypatch) -> tuple[JobGroup, JobItem]:
    """A one-answer run whose answer "Acme is good." is recorded while the analysis raises; the
    run closes with it, and its close announcement is left to the caller (not run here)."""
    from agent.providers.base import Answer

    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"])
    Brand.objects.create(workspace=group.workspace, name="Acme", is_own=True)
    item = JobItemFactory(group=group, status=JobItem.Status.RUNNING, text="")

    def broken(**kwargs):
        raise RuntimeError("analysis bug")

    with monkeypatch.context() as patched:
        patched.setattr("visibility.services.analysis.answer_findings", broken)
        assert answer_record(item=QueuedItem.of(item), backend="simulated",
                             answer=Answer(text="Acme is good.", sources=[]))
    item.refresh_from_db()
    assert item.status == JobItem.Status.OK and item.text == "Acme is good."
    assert item_raw_findings(item) is None  # recorded without any analysis
    group.refresh_from_db()
    assert group.status == JobGroup.Status.COMPLETED
    return group, item


@pytest.mark.django_db
def test_a_failing_analysis_never_costs_the_answer_and_the_runs_close_analyses_it_again(
    monkeypatch, user, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as closing:
        group, item = _answer_recorded_with_a_broken_analysis(monkeypatch)
    assert not RunStat.objects.filter(group=group).exists()
    for callback in closing:  # the run's close announcement, once the recording committed
        callback()
    assert mentioned_names(item) == {"Acme"}
    stat = RunStat.objects.get(group=group, provider="all")
    assert stat.answers == 1 and stat.brand_stats.get().mentioned == 1


@pytest.mark.django_db
def test_a_failing_analysis_never_costs_the_answer_and_the_sweep_writes_the_figures_the_close_did_not(
    monkeypatch, user
) -> None:
    group, item = _answer_recorded_with_a_broken_analysis(monkeypatch)  # its close announcement is lost
    # Closed a moment ago: the sweep leaves it to its own close.
    report = visibility_sweep()
    assert report.runs_refreshed == 0 and item_findings(item) is None
    JobGroup.objects.filter(id=group.id).update(finished_at=timezone.now() - timedelta(minutes=2))
    report = visibility_sweep()
    assert report.reanalysed == [] and report.runs_refreshed == 1
    assert mentioned_names(item) == {"Acme"}
    stat = RunStat.objects.get(group=group, provider="all")
    assert stat.answers == 1 and stat.brand_stats.get().mentioned == 1
    assert visibility_sweep().runs_refreshed == 0  # written once


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
    assert all(item_findings(item) is not None for item in ok)  # each analysed as it was recorded
    assert any(mentioned_names(item) for item in ok)  # simulated answers name the brands
    stat = RunStat.objects.get(group=group, provider="all")
    assert stat.answers == 12
    body = api.get(f"/api/runs/{group_id}/visibility/").json()
    assert body["answers"] == 12 and {b["name"] for b in body["brands"]} == {"Acme", "Globex"}
    before = {b["name"]: b["mentioned"] for b in body["brands"]}
    assert before["Acme"] == sum(brand_findings(item).get(own.id, {}).get("mentioned", False) for item in ok)
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
    item = JobItemFactory(group=group, text="Acme")  # stored without findings: analysed by the close
    assert not RunStat.objects.filter(group=group).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert job_group_finalize(group_id=group.id)
    stat = RunStat.objects.get(group=group, provider="all")
    assert stat.answers == 1 and stat.brand_stats.get().mentioned == 1
    assert mentioned_names(item) == {"Acme"}
    job_group_visibility_aggregate(group=group)  # idempotent: replaced, not doubled
    assert RunStat.objects.filter(group=group).count() == 2
