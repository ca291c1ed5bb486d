"""The demo workspace `bin/run` starts with: brands, three samples, two weeks of analysed simulated history."""
from __future__ import annotations

import pytest

from agent.models import JobGroup, JobItem
from visibility.models import Brand, RunBrandStat, RunStat
from visibility.services.analysis import findings_unpack
from workspaces.demo import demo_ensure

pytestmark = pytest.mark.django_db


def test_demo_workspace_has_brands_samples_and_a_fortnight_of_analysed_simulated_runs(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    workspace = demo_ensure().workspace
    brands = Brand.objects.filter(workspace=workspace)
    assert brands.count() == 4 and brands.filter(is_own=True).count() == 1
    assert workspace.samples_per_run == 3
    runs = JobGroup.objects.filter(workspace=workspace).order_by("created_at")
    assert runs.count() == 14 and {r.status for r in runs} == {"completed"}
    days = [r.created_at.date() for r in runs]
    assert len(set(days)) == 14 and (days[-1] - days[0]).days == 13
    items = JobItem.objects.filter(group__workspace=workspace)
    assert items.count() == 14 * 5 * 4 * 3 and set(items.values_list("backend", flat=True)) == {"simulated"}
    ok = items.filter(status="ok")
    findings = [findings_unpack(stored) for stored in ok.values_list("findings", flat=True)]
    assert None not in findings  # every ok answer analysed
    mentioned = sum(1 for found in findings for _brand, mentions, *_ in found["brands"] if mentions)
    assert mentioned > 0  # simulated answers name the brands, and the figures count them
    assert sum(RunBrandStat.objects.filter(run_stat__workspace=workspace, run_stat__provider="all")
               .values_list("mentioned", flat=True)) == mentioned
    assert RunStat.objects.filter(workspace=workspace, provider="all").count() == 14
    assert sum(RunStat.objects.filter(workspace=workspace, provider="all").values_list("answers", flat=True)) == ok.count()
    assert "[Simulated" in ok.first().text
    demo_ensure()  # idempotent: nothing added the second time
    assert JobGroup.objects.filter(workspace=workspace).count() == 14 and brands.count() == 4
