"""Analysing answers: one answer when it is recorded, or every stored answer of a workspace in batches.

Writes are guarded by the workspace's AnalysisState row: a batch (or one answer) is written only
under that row's lock and only if the brand revision it was computed for is still current, so an
analysis made with yesterday's brands never overwrites one made with today's.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from agent.models import JobGroup, JobItem
from visibility.detection import ANALYSIS_VERSION, BrandTerms, Matcher
from visibility.models import AnalysedAnswer, AnalysisState, Brand, CitedDomain, Mention

logger = logging.getLogger(__name__)

# A few thousand answers per transaction: large enough that per-batch costs vanish, small
# enough that the lock is held well under a second and memory stays flat.
REANALYSE_BATCH_SIZE = 2000
_ITEM_FIELDS = ("id", "group_id", "provider", "prompt_id", "text", "sources")
_MATCHER_CACHE_SIZE = 256
_matchers: dict[tuple, Matcher] = {}


@dataclass(frozen=True)
class Reanalysed:
    answers: int
    seconds: float
    finished: bool  # False when a newer brand change took over half-way
    revision: int


def _matcher(*, workspace_id, revision: int, fresh: bool = False) -> Matcher:
    """The workspace's matcher at this brand revision, compiled once per process and reused.

    `fresh` reads the brands again even when cached: a re-analysis on demand must also repair
    brands changed without the services (a shell, a data migration), which left the revision as it was.
    """
    key = (str(workspace_id), revision)
    matcher = None if fresh else _matchers.get(key)
    if matcher is None:
        brands = (
            Brand.objects.filter(workspace_id=workspace_id)
            .order_by("id")
            .values_list("id", "name", "aliases", "domains", "match_case")
        )
        matcher = Matcher(
            [
                BrandTerms(brand_id=id_, terms=(name, *aliases), domains=tuple(domains), match_case=match_case)
                for id_, name, aliases, domains, match_case in brands
            ]
        )
        if len(_matchers) >= _MATCHER_CACHE_SIZE:
            _matchers.clear()
        _matchers[key] = matcher
    return matcher


def _state_get(workspace_id) -> AnalysisState:
    state, _ = AnalysisState.objects.get_or_create(workspace_id=workspace_id)
    return state


def _insert(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT many plain tuples: several times faster than building model instances for bulk_create,
    which matters when a brand edit rewrites the mentions of 100,000 answers."""
    if not rows:
        return
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


_KEY_COLUMNS = ("item_id", "workspace_id", "group_id", "provider", "prompt_id")
_MENTION_COLUMNS = (
    *_KEY_COLUMNS,
    "brand_id",
    "mentioned",
    "mentions",
    "first_offset",
    "rank",
    "cited",
    "citations",
    "analysis_version",
)


def _rows_write(rows: list[tuple], *, workspace_id, matcher: Matcher, revision: int) -> None:
    """Analyse (id, group_id, provider, prompt_id, text, sources) rows and replace what was stored for them.

    Cited domains do not depend on brands, so answers already analysed at this ANALYSIS_VERSION keep
    theirs and only get their revision moved; only mentions are always rewritten.
    """
    now = timezone.now()
    # Raw inserts need values as the database stores them (SQLite keeps UUIDs as 32 hex digits).
    prep = connection.ops.adapt_datetimefield_value
    uuid_value = AnalysedAnswer._meta.get_field("group").target_field
    workspace_key = uuid_value.get_db_prep_value(uuid.UUID(str(workspace_id)), connection)
    item_ids = [row[0] for row in rows]
    # By item id, not by workspace: the workspace's own index would make every batch scan all
    # of the workspace's rows (quadratic over a re-analysis); a few thousand ids are one IN list.
    bounds = dict(item_id__in=item_ids) if len(rows) > 1 else dict(item_id=item_ids[0])
    current = set(AnalysedAnswer.objects.filter(**bounds, version=ANALYSIS_VERSION).values_list("item_id", flat=True))
    mentions, analysed, domains = [], [], []
    stamp = prep(now)
    for item_id, group_id, provider, prompt_id, text, sources in rows:
        result = matcher.analyse(text, sources if isinstance(sources, list) else [])
        keys = (item_id, workspace_key, uuid_value.get_db_prep_value(group_id, connection), provider, prompt_id)
        mentions.extend(
            (*keys, f.brand_id, f.mentioned, f.mentions, f.first_offset, f.rank, f.cited, f.citations, ANALYSIS_VERSION)
            for f in result.findings
        )
        if item_id not in current:
            analysed.append((*keys, ANALYSIS_VERSION, revision, stamp))
            domains.extend((*keys, domain[:255]) for domain in result.cited_domains)
    Mention.objects.filter(**bounds).delete()
    if current:
        AnalysedAnswer.objects.filter(**bounds, version=ANALYSIS_VERSION).update(revision=revision, analysed_at=now)
    if analysed:
        stale = bounds if not current else dict(item_id__in=[row[0] for row in analysed])
        CitedDomain.objects.filter(**stale).delete()
        AnalysedAnswer.objects.filter(**stale).delete()
    _insert(AnalysedAnswer, (*_KEY_COLUMNS, "version", "revision", "analysed_at"), analysed)
    _insert(Mention, _MENTION_COLUMNS, mentions)
    _insert(CitedDomain, (*_KEY_COLUMNS, "domain"), domains)


def answer_analyse(*, item_id: int) -> bool:
    """Analyse one recorded answer; False when the item is gone or not an ok answer.

    Idempotent: running it again replaces the item's analysis with an identical one. This runs in
    the consumers for every answer, so it speaks plain SQL (a handful of statements, no ORM query
    building, which cost more than the analysis itself) and its one transaction only writes.
    """
    quote = connection.ops.quote_name
    item_table, group_table = JobItem._meta.db_table, JobGroup._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.{quote('group_id')}, i.{quote('provider')}, i.{quote('prompt_id')}, i.{quote('text')}, "
            f"i.{quote('sources')}, g.{quote('workspace_id')} FROM {quote(item_table)} i "
            f"JOIN {quote(group_table)} g ON g.{quote('id')} = i.{quote('group_id')} "
            f"WHERE i.{quote('id')} = %s AND i.{quote('status')} = %s",
            [item_id, JobItem.Status.OK.value],
        )
        row = cursor.fetchone()
    if row is None:
        return False
    group_key, provider, prompt_id, text, raw_sources, workspace_key = row
    sources = JobItem._meta.get_field("sources").from_db_value(raw_sources, None, connection)
    uuid_field = AnalysedAnswer._meta.get_field("group").target_field
    workspace_id = uuid_field.to_python(workspace_key)
    state_table = quote(AnalysisState._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The state row's lock orders this write after any brand change that committed first,
            # so the revision stamped below is the one the matcher was built for.
            revision_sql = f"SELECT {quote('revision')} FROM {state_table} WHERE {quote('workspace_id')} = %s{lock}"
            cursor.execute(revision_sql, [workspace_key])
            found = cursor.fetchone()
            if found is None:
                _state_get(workspace_id)
                cursor.execute(revision_sql, [workspace_key])
                found = cursor.fetchone()
            revision = found[0]
            matcher = _matcher(workspace_id=workspace_id, revision=revision)
            result = matcher.analyse(text, sources if isinstance(sources, list) else [])
            keys = (item_id, workspace_key, group_key, provider, prompt_id)
            stamp = connection.ops.adapt_datetimefield_value(timezone.now())
            marker = (*keys, ANALYSIS_VERSION, revision, stamp)
            columns = (*_KEY_COLUMNS, "version", "revision", "analysed_at")
            # A fresh answer has no analysis yet: one INSERT, no DELETEs. Analysed before (a repeat
            # call): its rows are replaced.
            insert_marker = (
                f"INSERT INTO {quote(AnalysedAnswer._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT ({quote('item_id')}) DO NOTHING"
            )
            cursor.execute(insert_marker, marker)
            if cursor.rowcount != 1:
                for model in (Mention, CitedDomain, AnalysedAnswer):
                    cursor.execute(
                        f"DELETE FROM {quote(model._meta.db_table)} WHERE {quote('item_id')} = %s", [item_id]
                    )
                cursor.execute(insert_marker, marker)
        _insert(Mention, _MENTION_COLUMNS, [
            (*keys, f.brand_id, f.mentioned, f.mentions, f.first_offset, f.rank, f.cited, f.citations, ANALYSIS_VERSION)
            for f in result.findings
        ])
        _insert(CitedDomain, (*_KEY_COLUMNS, "domain"), [(*keys, domain[:255]) for domain in result.cited_domains])
    return True


def _ok_answer_batches(*, workspace_id, batch_size: int) -> Iterator[list[tuple]]:
    """A workspace's ok answers in batches of `batch_size`, read run by run.

    Each query reads one run's items by id after the last one seen (the run's index, no OFFSET);
    a query over the whole workspace would sort all its answers again for every batch.
    """
    batch: list[tuple] = []
    for group_id in (
        JobGroup.objects.filter(workspace_id=workspace_id).order_by("created_at", "id").values_list("id", flat=True)
    ):
        last_id = 0
        while True:
            rows = list(
                JobItem.objects.filter(group_id=group_id, status=JobItem.Status.OK, id__gt=last_id)
                .order_by("id")
                .values_list(*_ITEM_FIELDS)[:batch_size]
            )
            if not rows:
                break
            last_id = rows[-1][0]
            batch.extend(rows)
            while len(batch) >= batch_size:
                yield batch[:batch_size]
                batch = batch[batch_size:]
    if batch:
        yield batch


def workspace_reanalyse(*, workspace_id, batch_size: int = REANALYSE_BATCH_SIZE) -> Reanalysed:
    """Analyse every ok answer of a workspace again with its current brands, then refresh its run figures.

    Reads in keyset-paginated batches (no answer held beyond its batch) and writes each batch in
    one short transaction. Stops early when the brands change under it: the change's
    own re-analysis then covers everything.
    """
    from visibility.services.aggregates import workspace_aggregates_rebuild

    started = time.monotonic()
    revision = _state_get(workspace_id).revision
    matcher = _matcher(workspace_id=workspace_id, revision=revision, fresh=True)
    total = 0
    for rows in _ok_answer_batches(workspace_id=workspace_id, batch_size=batch_size):
        with transaction.atomic():
            current = (
                AnalysisState.objects.select_for_update()
                .values_list("revision", flat=True)
                .get(workspace_id=workspace_id)
            )
            if current != revision:
                logger.info(
                    "re-analysis of workspace %s at revision %s superseded by %s", workspace_id, revision, current
                )
                return Reanalysed(answers=total, seconds=time.monotonic() - started, finished=False, revision=revision)
            _rows_write(rows, workspace_id=workspace_id, matcher=matcher, revision=revision)
        total += len(rows)
    AnalysisState.objects.filter(workspace_id=workspace_id, revision=revision).update(
        reanalysed_revision=revision, reanalysed_at=timezone.now(), reanalysed_version=ANALYSIS_VERSION
    )
    workspace_aggregates_rebuild(workspace_id=workspace_id)
    return Reanalysed(answers=total, seconds=time.monotonic() - started, finished=True, revision=revision)


def workspaces_reanalyse_pending() -> list[Reanalysed]:
    """Re-analyse every workspace whose brands changed since its last full re-analysis, or whose last
    one used an older ANALYSIS_VERSION. Called by the visibility sweep in the consumers; a brand edit
    only moves the revision, so the request that made it stays fast."""
    from django.db.models import F, Q

    pending = AnalysisState.objects.filter(
        Q(reanalysed_revision__lt=F("revision")) | Q(reanalysed_version__lt=ANALYSIS_VERSION)
    ).values_list("workspace_id", flat=True)
    return [workspace_reanalyse(workspace_id=workspace_id) for workspace_id in list(pending)]
