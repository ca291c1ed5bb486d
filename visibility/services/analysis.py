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

    Idempotent: running it again replaces the item's analysis with an identical one.
    """
    row = (
        JobItem.objects.filter(id=item_id, status=JobItem.Status.OK)
        .values_list(*_ITEM_FIELDS, "group__workspace_id")
        .first()
    )
    if row is None:
        return False
    workspace_id = row[-1]
    _state_get(workspace_id)
    with transaction.atomic():
        revision = (
            AnalysisState.objects.select_for_update().values_list("revision", flat=True).get(workspace_id=workspace_id)
        )
        _rows_write(
            [row[:-1]],
            workspace_id=workspace_id,
            matcher=_matcher(workspace_id=workspace_id, revision=revision),
            revision=revision,
        )
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
        reanalysed_revision=revision, reanalysed_at=timezone.now()
    )
    workspace_aggregates_rebuild(workspace_id=workspace_id)
    return Reanalysed(answers=total, seconds=time.monotonic() - started, finished=True, revision=revision)


def workspace_reanalyse_request(*, workspace_id) -> None:
    """Called after a brand change commits. For now it re-analyses at once, in the caller's process;
    the pending state stays in the database (`reanalysed_revision` < `revision`), so a sweep or
    `manage.py visibility_reanalyse` finishes whatever this call could not."""
    try:
        workspace_reanalyse(workspace_id=workspace_id)
    except Exception:  # the brand change itself is saved; a later sweep or the command re-analyses
        logger.exception("re-analysis of workspace %s failed; it stays pending", workspace_id)


def workspaces_reanalyse_pending() -> list[Reanalysed]:
    """Re-analyse every workspace whose brands changed since its last full re-analysis."""
    from django.db.models import F

    pending = AnalysisState.objects.filter(reanalysed_revision__lt=F("revision")).values_list("workspace_id", flat=True)
    return [workspace_reanalyse(workspace_id=workspace_id) for workspace_id in list(pending)]
