"""Who writes a run's figures, and when: never counted with brands older than the workspace's, never
held up by one workspace or run that cannot be analysed, and never served from the cache before the
run is closed."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from agent.models import JobGroup, JobItem
from tests.factories import JobGroupFactory, JobItemFactory
from tests.visibility.findings import item_findings
from visibility.cached_reads import job_group_visibility_key
from visibility.models import AnalysisState, Brand, RunBrandStat, RunStat
from visibility.services import analysis
from visibility.services.aggregates import job_group_visibility_aggregate
from visibility.services.brands import brand_create, brand_update
from visibility.services.sweep import _FIGURES_FAILED_KEY, FIGURES_RETRY_SECONDS, visibility_sweep


def _closed_run(text: str, **group_fields) -> JobGroup:
    group = JobGroupFactory(providers=["chatgpt"], finished_at=timezone.now(), **group_fields)
    JobItemFactory(group=group, provider="chatgpt", text=text)  # stored without findings
    return group


def _mentioned(group: JobGroup) -> dict[str, int]:
    stat = RunStat.objects.get(group=group, provider="all")
    return dict(RunBrandStat.objects.filter(run_stat=stat).values_list("brand__name", "mentioned"))


@pytest.mark.django_db
def test_figures_counted_before_a_brand_edit_are_not_written_and_the_edits_reanalysis_writes_them(
    monkeypatch, django_capture_on_commit_callbacks
) -> None:
    group = _closed_run("Acme and Globex Corp.")
    brand_create(workspace=group.workspace, name="Acme", is_own=True)
    globex = brand_create(workspace=group.workspace, name="Globex")
    visibility_sweep()  # the brands' own re-analysis, so only the edit below is pending
    complete = analysis.runs_findings_complete

    def counted_then_edited(**kwargs):
        counted = complete(**kwargs)
        # Another process edits a brand while this one holds the counts.
        brand_update(brand=Brand.objects.get(id=globex.id), name="Globex Corp")
        return counted

    RunStat.objects.filter(group=group).delete()
    monkeypatch.setattr(analysis, "runs_findings_complete", counted_then_edited)
    assert job_group_visibility_aggregate(group=group) == 0
    assert not RunStat.objects.filter(group=group).exists()  # nothing counted with the older brands

    monkeypatch.setattr(analysis, "runs_findings_complete", complete)
    report = visibility_sweep()
    assert [r.finished for r in report.reanalysed] == [True]
    assert _mentioned(group) == {"Acme": 1, "Globex Corp": 1}
    assert item_findings(JobItem.objects.get(group=group))["revision"] == AnalysisState.objects.get(
        workspace=group.workspace
    ).revision


@pytest.mark.django_db
def test_a_workspace_or_run_that_cannot_be_analysed_holds_up_no_other_and_is_retried_later(caplog) -> None:
    broken_run = _closed_run("Initech, then Acme.")
    broken = brand_create(workspace=broken_run.workspace, name="Initech")
    Brand.objects.filter(id=broken.id).update(aliases=5)  # broken in a shell: no matcher can be built
    healthy_run = _closed_run("Acme leads.")
    brand_create(workspace=healthy_run.workspace, name="Acme", is_own=True)
    # A workspace tracking no brand: nothing to re-analyse, only its run's figures to write.
    plain_run = _closed_run("See https://g2.com for reviews.")
    later = timezone.now() + timedelta(minutes=2)  # past the grace minute of both closes

    with caplog.at_level(logging.ERROR, logger="visibility.services"):
        report = visibility_sweep(now=later)
    # The broken workspace's re-analysis and its run's figures failed; the healthy ones went through:
    # the healthy workspace's re-analysis wrote its run's figures, the sweep the plain run's.
    assert [r.finished for r in report.reanalysed] == [True]
    assert report.runs_refreshed == 1
    assert _mentioned(healthy_run) == {"Acme": 1}
    assert RunStat.objects.get(group=plain_run, provider="all").answers == 1
    assert not RunStat.objects.filter(group=broken_run).exists()
    assert any(f"run {broken_run.id} failed again" in r.getMessage() for r in caplog.records)

    # Not read again every pass: left alone for FIGURES_RETRY_SECONDS.
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    ttl = client.ttl(_FIGURES_FAILED_KEY.format(group_id=broken_run.id))
    assert 0 < ttl <= FIGURES_RETRY_SECONDS
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="visibility.services"):
        assert visibility_sweep(now=later).runs_refreshed == 0
    assert not any(f"run {broken_run.id}" in r.getMessage() for r in caplog.records)

    Brand.objects.filter(id=broken.id).update(aliases=[])  # repaired
    client.delete(_FIGURES_FAILED_KEY.format(group_id=broken_run.id))  # as when the wait is over
    report = visibility_sweep(now=later)
    assert [r.finished for r in report.reanalysed] == [True] and report.runs_refreshed == 0
    # Its workspace's re-analysis wrote the run's figures already.
    assert _mentioned(broken_run) == {"Initech": 1}


@pytest.mark.django_db
def test_a_cancelled_run_still_closing_is_not_served_from_the_cache() -> None:
    group = _closed_run("Acme.")
    brand_create(workspace=group.workspace, name="Acme", is_own=True)
    job_group_visibility_aggregate(group=group)
    assert job_group_visibility_key(group=group) is not None

    JobGroup.objects.filter(id=group.id).update(status=JobGroup.Status.CANCELLED, finished_at=None)
    group.refresh_from_db()
    # Cancelled, but the answers it had in flight may still be recorded until it is closed.
    assert job_group_visibility_key(group=group) is None
    JobGroup.objects.filter(id=group.id).update(finished_at=timezone.now())
    group.refresh_from_db()
    assert job_group_visibility_key(group=group) is not None
