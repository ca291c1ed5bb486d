"""Analysed answers for a benchmark fixture at the scale of a year (a million answers), written directly.

The real analysis reads every answer's text (about 3 ms of wall time per answer here): an hour for a
million. This writes what it would store on each answer (its findings, `JobItem.findings`), with
mentions, ranks and citations drawn deterministically from the item and brand ids, then each run's
figures with the real aggregate service, so every read path (trend, dashboard, run visibility) sees
what it sees in production.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from agent.models import JobGroup, JobItem
from visibility.detection import ANALYSIS_VERSION
from visibility.models import AnalysisState, Brand
from visibility.selectors import FINISHED_RUN_STATUSES
from visibility.services.aggregates import workspace_aggregates_rebuild
from visibility.services.analysis import FINDINGS_KEY, findings_store
from visibility.services.brands import brand_create
from workspaces.models import Workspace

_CITED_SITES = ("g2.com", "capterra.com", "en.wikipedia.org", "techradar.com", "reddit.com", "hubspot.com",
                "blog.hubspot.com", "salesforce.com", "pipedrive.com", "zoho.com")
_RUNS_PER_TRANSACTION = 50


def visibility_bulk_write(*, workspace: Workspace, brands: tuple[str, ...]) -> int:
    """Track `brands` (the first is the workspace's own) and store findings on every ok answer; returns the answers."""
    for index, name in enumerate(brands):
        brand_create(workspace=workspace, name=name, domains=[f"{name.split()[0].lower()}.com"], is_own=index == 0)
    revision = AnalysisState.objects.get(workspace_id=workspace.id).revision
    brand_ids = sorted(Brand.objects.filter(workspace=workspace).values_list("id", flat=True))
    group_ids = list(
        JobGroup.objects.filter(workspace=workspace, status__in=FINISHED_RUN_STATUSES).values_list("id", flat=True)
    )
    written = 0
    for start in range(0, len(group_ids), _RUNS_PER_TRANSACTION):
        with transaction.atomic():
            for group_id in group_ids[start : start + _RUNS_PER_TRANSACTION]:
                written += _findings_write(group_id=group_id, brand_ids=brand_ids, revision=revision)
    AnalysisState.objects.filter(workspace_id=workspace.id).update(
        reanalysed_revision=revision, reanalysed_at=timezone.now(), reanalysed_version=ANALYSIS_VERSION
    )
    workspace_aggregates_rebuild(workspace_id=workspace.id)
    return written


def fixture_findings(item_id: int, brand_ids: list[int], revision: int) -> dict:
    """An answer's findings, drawn from the ids: brand k (by id) is mentioned in about (15 + 8k) % of
    answers with rank 1-4, cited in about a tenth; two in ten of the sites are cited."""
    found = []
    for brand_id in brand_ids:
        mentioned = (item_id * 31 + brand_id * 17) % 100 < 15 + (brand_id % 8) * 8
        cited = (item_id * 13 + brand_id * 7) % 100 < 10
        if mentioned or cited:
            found.append([
                brand_id,
                1 + item_id % 3 if mentioned else 0,
                (item_id * 7 + brand_id) % 400 if mentioned else None,
                1 + (item_id + brand_id) % 4 if mentioned else None,
                1 if cited else 0,
            ])
    domains = [site for n, site in enumerate(_CITED_SITES) if (item_id * 7 + n * 3) % 10 < 2]
    return {"version": ANALYSIS_VERSION, "revision": revision, "brands": found, "domains": domains}


def _findings_write(*, group_id, brand_ids: list[int], revision: int) -> int:
    item_ids = JobItem.objects.filter(group_id=group_id, status=JobItem.Status.OK).values_list("id", flat=True)
    updates = [(item_id, {FINDINGS_KEY: fixture_findings(item_id, brand_ids, revision)}) for item_id in item_ids]
    findings_store(updates)
    return len(updates)
