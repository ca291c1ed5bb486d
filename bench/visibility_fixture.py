"""Visibility rows for a benchmark fixture at the scale of a year (a million answers), written in SQL.

The real analysis reads every answer's text (about 3 ms of wall time per answer here): an hour for a
million. This writes what it would store, one `INSERT ... SELECT` per table and 50 runs, with mentions,
ranks and citations drawn deterministically from the item and brand ids, then each run's figures with
the real aggregate service, so every read path (trend, dashboard, run visibility) sees what it sees
in production.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from agent.models import JobGroup, JobItem
from visibility.detection import ANALYSIS_VERSION
from visibility.models import AnalysedAnswer, AnalysisState, Brand, CitedDomain, Mention
from visibility.selectors import FINISHED_RUN_STATUSES
from visibility.services.aggregates import workspace_aggregates_rebuild
from visibility.services.brands import brand_create
from workspaces.models import Workspace

_CITED_SITES = ("g2.com", "capterra.com", "en.wikipedia.org", "techradar.com", "reddit.com", "hubspot.com",
                "blog.hubspot.com", "salesforce.com", "pipedrive.com", "zoho.com")
_RUNS_PER_STATEMENT = 50


def visibility_bulk_write(*, workspace: Workspace, brands: tuple[str, ...]) -> int:
    """Track `brands` (the first is the workspace's own) and mark every ok answer analysed; returns the answers."""
    for index, name in enumerate(brands):
        brand_create(workspace=workspace, name=name, domains=[f"{name.split()[0].lower()}.com"], is_own=index == 0)
    revision = AnalysisState.objects.get(workspace_id=workspace.id).revision
    group_ids = list(
        JobGroup.objects.filter(workspace=workspace, status__in=FINISHED_RUN_STATUSES).values_list("id", flat=True)
    )
    written = 0
    for start in range(0, len(group_ids), _RUNS_PER_STATEMENT):
        chunk = group_ids[start : start + _RUNS_PER_STATEMENT]
        with transaction.atomic():
            written += _rows_insert(workspace=workspace, group_ids=chunk, revision=revision)
    AnalysisState.objects.filter(workspace_id=workspace.id).update(
        reanalysed_revision=revision, reanalysed_at=timezone.now(), reanalysed_version=ANALYSIS_VERSION
    )
    workspace_aggregates_rebuild(workspace_id=workspace.id)
    return written


def _rows_insert(*, workspace: Workspace, group_ids: list, revision: int) -> int:
    quote = connection.ops.quote_name
    item = quote(JobItem._meta.db_table)
    keys = "item_id, workspace_id, group_id, provider, prompt_id"
    selected = (f"i.{quote('id')}, g.{quote('workspace_id')}, i.{quote('group_id')}, i.{quote('provider')}, "
                f"i.{quote('prompt_id')}")
    id_field = JobGroup._meta.get_field("id")
    ids = [id_field.get_db_prep_value(g, connection) for g in group_ids]
    in_groups = (f"FROM {item} i JOIN {quote(JobGroup._meta.db_table)} g ON g.{quote('id')} = i.{quote('group_id')} "
                 f"WHERE i.{quote('group_id')} IN ({', '.join(['%s'] * len(ids))}) AND i.{quote('status')} = %s")
    ok = JobItem.Status.OK.value
    # Brand k (by id order) is mentioned in about (15 + 8k) % of answers, cited in about a tenth of them;
    # its rank is 1-4, drawn from the ids like the rest.
    mentioned = f"((i.{quote('id')} * 31 + b.{quote('id')} * 17) %% 100 < 15 + (b.{quote('id')} %% 8) * 8)"
    cited = f"((i.{quote('id')} * 13 + b.{quote('id')} * 7) %% 100 < 10)"
    sites = " UNION ALL ".join(f"SELECT %s AS domain, {n} AS n" for n in range(len(_CITED_SITES)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(AnalysedAnswer._meta.db_table)} ({keys}, version, revision, analysed_at) "
            f"SELECT {selected}, %s, %s, %s {in_groups}",
            [ANALYSIS_VERSION, revision, timezone.now(), *ids, ok],
        )
        answers = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {quote(Mention._meta.db_table)} ({keys}, brand_id, mentioned, mentions, first_offset, "
            f"{quote('rank')}, cited, citations, analysis_version) "
            f"SELECT {selected}, b.{quote('id')}, {mentioned}, "
            f"CASE WHEN {mentioned} THEN 1 + i.{quote('id')} %% 3 ELSE 0 END, "
            f"CASE WHEN {mentioned} THEN (i.{quote('id')} * 7 + b.{quote('id')}) %% 400 END, "
            f"CASE WHEN {mentioned} THEN 1 + (i.{quote('id')} + b.{quote('id')}) %% 4 END, "
            f"{cited}, CASE WHEN {cited} THEN 1 ELSE 0 END, %s "
            f"{in_groups.replace('WHERE', f'JOIN {quote(Brand._meta.db_table)} b ON b.workspace_id = g.workspace_id WHERE')}"
            f" AND ({mentioned} OR {cited})",
            [ANALYSIS_VERSION, *ids, ok],
        )
        cursor.execute(
            f"INSERT INTO {quote(CitedDomain._meta.db_table)} ({keys}, domain) "
            f"SELECT {selected}, d.domain "
            f"{in_groups.replace('WHERE', f'CROSS JOIN ({sites}) d WHERE')}"
            f" AND (i.{quote('id')} * 7 + d.n * 3) %% 10 < 2",
            [*_CITED_SITES, *ids, ok],
        )
    return answers
