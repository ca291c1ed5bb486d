"""Per-run figures (run × provider and "all" × brand, with numerators and denominators), written when
a run closes and after a re-analysis, so the trend reads a few rows per run and never raw answers.

They are counted from the answers' findings (visibility/services/analysis.py), after analysing again
those missing or made with older brands, and written under the workspace's AnalysisState lock only
if its brand revision is still the one they were counted at. So whichever of two writers of a run's
figures (its close, a brand edit's re-analysis) commits last, it never writes outdated figures: a
writer that counted before a brand change writes nothing, and the change's re-analysis rewrites them."""

from __future__ import annotations

from django.db import transaction

from agent.models import JobGroup
from visibility.detection import ANALYSIS_VERSION
from visibility.models import ALL_PROVIDERS, AnalysisState, Brand, RunBrandStat, RunDomainStat, RunStat
from visibility.selectors import FINISHED_RUN_STATUSES, SetCounts


def _aggregates_write(groups: list[JobGroup]) -> int:
    """Write the figures of `groups`, runs of one workspace; returns the run × provider rows written
    (none when the workspace's brands changed while they were counted)."""
    from visibility.services.analysis import runs_findings_complete

    if not groups:
        return 0
    workspace_id = groups[0].workspace_id
    by_group: dict = {group.id: {} for group in groups}
    counted, _, revision = runs_findings_complete(
        workspace_id=workspace_id, group_ids=list(by_group), by=("group_id", "provider")
    )
    for (group_id, provider), counts in counted.items():
        by_group[group_id][provider] = counts
    brand_ids = list(Brand.objects.filter(workspace_id=workspace_id).values_list("id", flat=True))
    with transaction.atomic():
        state = AnalysisState.objects.select_for_update().filter(workspace_id=workspace_id).values_list("revision")
        if (state.first() or (0,))[0] != revision:
            return 0  # the brands changed meanwhile: the change's re-analysis writes these figures
        RunStat.objects.filter(group_id__in=list(by_group)).delete()
        figures: list[tuple[RunStat, SetCounts]] = []
        for group in groups:
            per_provider = by_group[group.id]
            for provider in group.providers:
                per_provider.setdefault(provider, SetCounts())
            total = SetCounts()
            for counts in per_provider.values():
                total.add(counts)
            figures += [
                (
                    RunStat(
                        group=group, workspace_id=group.workspace_id, provider=provider, at=group.created_at,
                        answers=counts.answers, failed=counts.failed, analysis_version=ANALYSIS_VERSION,
                    ),
                    counts,
                )
                for provider, counts in [(ALL_PROVIDERS, total), *per_provider.items()]
            ]
        # Three INSERTs for every run × provider (the rows' ids come back from the first), not three each.
        RunStat.objects.bulk_create([stat for stat, _ in figures])
        RunBrandStat.objects.bulk_create(
            RunBrandStat(run_stat=stat, brand_id=brand_id, mentioned=mentioned, rank_sum=rank_sum, cited=cited)
            for stat, counts in figures
            for brand_id in brand_ids
            for mentioned, rank_sum, cited in (counts.brands.get(brand_id, (0, 0, 0)),)
        )
        RunDomainStat.objects.bulk_create(
            RunDomainStat(run_stat=stat, domain=domain, answers=n)
            for stat, counts in figures
            for domain, n in counts.domains.items()
        )
        written = len(figures)
    return written


def job_group_visibility_aggregate(*, group: JobGroup) -> int:
    """Write a closed run's figures (replacing any earlier ones), after analysing again its answers whose
    findings are missing or outdated; returns the number of run × provider rows."""
    return _aggregates_write([group])


def workspace_aggregates_rebuild(*, workspace_id, chunk: int = 200) -> int:
    """Rewrite the figures of every finished run of a workspace (after its brands or analyses changed)."""
    groups = list(
        JobGroup.objects.filter(workspace_id=workspace_id, status__in=FINISHED_RUN_STATUSES).order_by("created_at")
    )
    return sum(_aggregates_write(groups[start : start + chunk]) for start in range(0, len(groups), chunk))
