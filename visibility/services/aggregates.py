"""Per-run figures (run × provider and "all" × brand, with numerators and denominators), written when
a run closes and after a re-analysis, so the trend reads a few rows per run and never raw answers.
They are counted from the answers' findings (visibility/services/analysis.py)."""

from __future__ import annotations

from django.db import transaction

from agent.models import JobGroup
from visibility.detection import ANALYSIS_VERSION
from visibility.models import ALL_PROVIDERS, Brand, RunBrandStat, RunDomainStat, RunStat
from visibility.selectors import FINISHED_RUN_STATUSES, SetCounts, visibility_counts


def _aggregates_write(groups: list[JobGroup], *, counted: dict[tuple, SetCounts] | None = None) -> int:
    """Write the figures of `groups` from their answers' findings (or from `counted`, their counts by
    (group id, provider), already read)."""
    if not groups:
        return 0
    by_group: dict = {group.id: {} for group in groups}
    if counted is None:
        counted = visibility_counts(group_ids=list(by_group), by=("group_id", "provider"))
    for (group_id, provider), counts in counted.items():
        by_group[group_id][provider] = counts
    brand_ids = {
        workspace_id: list(Brand.objects.filter(workspace_id=workspace_id).values_list("id", flat=True))
        for workspace_id in {group.workspace_id for group in groups}
    }
    written = 0
    with transaction.atomic():
        RunStat.objects.filter(group_id__in=list(by_group)).delete()
        for group in groups:
            per_provider = by_group[group.id]
            for provider in group.providers:
                per_provider.setdefault(provider, SetCounts())
            total = SetCounts()
            for counts in per_provider.values():
                total.add(counts)
            for provider, counts in [(ALL_PROVIDERS, total), *per_provider.items()]:
                stat = RunStat.objects.create(
                    group=group,
                    workspace_id=group.workspace_id,
                    provider=provider,
                    at=group.created_at,
                    answers=counts.answers,
                    failed=counts.failed,
                    analysis_version=ANALYSIS_VERSION,
                )
                RunBrandStat.objects.bulk_create(
                    RunBrandStat(
                        run_stat=stat,
                        brand_id=brand_id,
                        mentioned=counts.brands.get(brand_id, (0, 0, 0))[0],
                        rank_sum=counts.brands.get(brand_id, (0, 0, 0))[1],
                        cited=counts.brands.get(brand_id, (0, 0, 0))[2],
                    )
                    for brand_id in brand_ids[group.workspace_id]
                )
                RunDomainStat.objects.bulk_create(
                    RunDomainStat(run_stat=stat, domain=domain, answers=n) for domain, n in counts.domains.items()
                )
                written += 1
    return written


def job_group_visibility_aggregate(*, group: JobGroup) -> int:
    """Write a closed run's figures (replacing any earlier ones), after analysing again its answers whose
    findings are missing or outdated; returns the number of run × provider rows."""
    from visibility.services.analysis import job_group_findings_complete

    counted, _ = job_group_findings_complete(group=group, by=("group_id", "provider"))
    return _aggregates_write([group], counted=counted)


def workspace_aggregates_rebuild(*, workspace_id, chunk: int = 200) -> int:
    """Rewrite the figures of every finished run of a workspace (after its brands or analyses changed)."""
    groups = list(
        JobGroup.objects.filter(workspace_id=workspace_id, status__in=FINISHED_RUN_STATUSES).order_by("created_at")
    )
    return sum(_aggregates_write(groups[start : start + chunk]) for start in range(0, len(groups), chunk))
