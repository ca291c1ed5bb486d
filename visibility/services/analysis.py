"""Analysing answers: one answer when it is recorded, or stored answers in batches (the sweep).

A batch is written under the workspace's AnalysisState row lock, only if the brand revision it
was computed for is still current. One recorded answer takes no lock: it is stamped with the
revision its (cached) matcher was built for, and the sweep re-analyses it if that is stale;
`answer_analyse` says why concurrent writers still end right.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from agent.models import JobGroup, JobItem
from visibility.detection import ANALYSIS_VERSION, Matcher
from visibility.models import AnalysedAnswer, AnalysisState, CitedDomain, Mention
from visibility.services.matchers import cached_matcher, group_workspace_key, matcher_at, uuid_db

logger = logging.getLogger(__name__)

# A few thousand answers per transaction: large enough that per-batch costs vanish, small
# enough that the lock is held well under a second and memory stays flat.
REANALYSE_BATCH_SIZE = 2000
_ITEM_FIELDS = ("id", "group_id", "provider", "prompt_id", "text", "sources")


@dataclass(frozen=True)
class Reanalysed:
    answers: int
    seconds: float
    finished: bool  # False when a newer brand change took over half-way
    revision: int


def _state_get(workspace_id) -> AnalysisState:
    state, _ = AnalysisState.objects.get_or_create(workspace_id=workspace_id)
    return state


def _insert(model, columns: tuple[str, ...], rows: list[tuple], *, on_conflict: str = "DO NOTHING") -> None:
    """INSERT many plain tuples, skipping rows already there (another writer's, see answer_analyse):
    several times faster than building model instances for bulk_create, which matters when a brand
    edit rewrites the mentions of 100,000 answers."""
    if not rows:
        return
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT {on_conflict}"
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

_DOMAIN_COLUMNS = (*_KEY_COLUMNS, "domain")
_MARKER_COLUMNS = (*_KEY_COLUMNS, "version", "revision", "analysed_at")

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
    # Locked until the batch commits: a consumer's marker for one of these answers waits, then lowers it.
    locked = dict(AnalysedAnswer.objects.select_for_update().filter(**bounds).values_list("item_id", "version"))
    current = {item_id for item_id, version in locked.items() if version == ANALYSIS_VERSION}
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
        CitedDomain.objects.filter(**bounds if not current else dict(item_id__in=[row[0] for row in analysed])).delete()
        # Only the markers locked above: one written since then is lowered by the INSERT below instead.
        if older := [item_id for item_id, version in locked.items() if version != ANALYSIS_VERSION]:
            AnalysedAnswer.objects.filter(item_id__in=older).delete()
    _insert(Mention, _MENTION_COLUMNS, mentions)
    _insert(CitedDomain, _DOMAIN_COLUMNS, domains)
    # Last, and lowering rather than raising a marker a recording consumer wrote since the read above.
    _insert(AnalysedAnswer, _MARKER_COLUMNS, analysed, on_conflict=_marker_lower_sql())


@dataclass(frozen=True)
class RecordedAnswer:
    """What the recorder of an ok answer already holds, so its analysis reads nothing back."""

    item_id: int
    group_id: str
    provider: str
    text: str
    sources: list


def answer_analyse(*, item_id: int, recorded: RecordedAnswer | None = None) -> bool:
    """Analyse one recorded answer; False when the item is gone or not an ok answer.

    Runs in the consumers for every answer, so it costs at most three INSERTs (mentions, cited
    domains, then the marker; empty ones are skipped), no transaction and no lock: the brand
    revision and matcher come from `cached_matcher`, which may lag a brand edit by
    VISIBILITY_MATCHER_TTL seconds. The marker is stamped with the revision the matcher was built
    for, so an answer analysed with yesterday's brands is stale and the sweep re-analyses it
    (`stale_analysed_item_ids`). `recorded` carries the answer; without it (a retry, a test) the
    answer is read from the database first.

    Why concurrent writers of one answer's rows (this function, the sweep's batches) always end
    right, without a lock here:
    - Mentions and domains go first, the marker last, in separate autocommit statements: a failure
      half-way leaves no marker, and the sweep retries answers with none.
    - Every INSERT skips rows already there (ON CONFLICT DO NOTHING), so meeting another writer is
      never an error; it may leave a mix of two writers' mention rows.
    - A marker written over an existing one keeps the lower revision and version of the two
      (`_MARKER_UPSERT`): whenever two writers with different brands met on an answer, its marker
      says stale and the sweep re-analyses it from scratch.
    - A sweep batch locks the markers it rewrites (`_rows_write`) and the workspace's state row,
      so this function's marker, if it lands on one of them, waits for the batch to commit and
      then lowers it. Markers stamped by the batch itself are only ever raised to the revision
      read under that lock, with brands read at that revision.
    """
    if recorded is None:
        recorded = _recorded_answer_get(item_id)
        if recorded is None:
            return False
    workspace_key = group_workspace_key(recorded.group_id)
    if workspace_key is None:
        return False
    revision, matcher = cached_matcher(workspace_key=workspace_key)
    sources = recorded.sources if isinstance(recorded.sources, list) else []
    result = matcher.analyse(recorded.text, sources)
    group_key = uuid_db(recorded.group_id)
    head = (recorded.item_id, workspace_key, group_key, recorded.provider, recorded.item_id)
    with connection.cursor() as cursor:
        if result.findings:
            _statement_run(cursor, _values_insert_sql(Mention, _MENTION_COLUMNS, len(result.findings)), [
                value for f in result.findings for value in (
                    *head, f.brand_id, f.mentioned, f.mentions, f.first_offset, f.rank, f.cited, f.citations,
                    ANALYSIS_VERSION,
                )
            ])
        if result.cited_domains:
            _statement_run(cursor, _values_insert_sql(CitedDomain, _DOMAIN_COLUMNS, len(result.cited_domains)), [
                value for domain in result.cited_domains for value in (*head, domain[:255])
            ])
        stamp = connection.ops.adapt_datetimefield_value(timezone.now())
        _statement_run(cursor, _marker_upsert_sql(), [*head, ANALYSIS_VERSION, revision, stamp])
    return True


_qmark_statements: dict[str, str] = {}


def _statement_run(cursor, sql: str, params: list) -> None:
    """Run one of the statements above.

    On SQLite, Django rewrites each statement's `%s` into `?` with a regex on every call: 10–20 µs
    per multi-row INSERT here, a tenth of an answer's analysis. These few statements are converted
    once (by Django's own converter) and run on the DB-API cursor, still under Django's mapping of
    database errors. While queries are logged or wrapped (tests, DEBUG) the ordinary path runs, so
    whatever counts queries still sees these.
    """
    if connection.vendor != "sqlite" or connection.queries_logged or connection.execute_wrappers:
        cursor.execute(sql, params)
        return
    sqlite_cursor = cursor.cursor
    qmark = _qmark_statements.get(sql)
    if qmark is None:
        qmark = _qmark_statements[sql] = sqlite_cursor.convert_query(sql)
    with connection.wrap_database_errors:
        sqlite3.Cursor.execute(sqlite_cursor, qmark, params)


def _recorded_answer_get(item_id: int) -> RecordedAnswer | None:
    row = (
        JobItem.objects.filter(id=item_id, status=JobItem.Status.OK)
        .values_list("group_id", "provider", "text", "sources")
        .first()
    )
    if row is None:
        return None
    group_id, provider, text, sources = row
    return RecordedAnswer(item_id=item_id, group_id=str(group_id), provider=provider, text=text, sources=sources)


_sql_cache: dict[tuple, str] = {}


def _values_insert_sql(model, columns: tuple[str, ...], rows: int) -> str:
    """One INSERT of `rows` rows that skips rows already there; prompt_id is read from the item in the
    same statement (the recorder does not hold it), so it takes the item id as its parameter."""
    key = (model, rows)
    sql = _sql_cache.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        prompt = (
            f"(SELECT {quote('prompt_id')} FROM {quote(JobItem._meta.db_table)} WHERE {quote('id')} = %s)"
        )
        row = "(" + ", ".join(prompt if column == "prompt_id" else "%s" for column in columns) + ")"
        sql = _sql_cache[key] = (
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES {', '.join([row] * rows)} ON CONFLICT DO NOTHING"
        )
    return sql


def _marker_lower_sql() -> str:
    """ON CONFLICT clause of a marker INSERT: over an existing marker, keep the lower revision and version."""
    quote = connection.ops.quote_name
    table = quote(AnalysedAnswer._meta.db_table)
    lower = {
        column: f"CASE WHEN excluded.{quote(column)} < {table}.{quote(column)} "
        f"THEN excluded.{quote(column)} ELSE {table}.{quote(column)} END"
        for column in ("revision", "version")
    }
    return (
        f"({quote('item_id')}) DO UPDATE SET {quote('revision')} = {lower['revision']}, "
        f"{quote('version')} = {lower['version']}, {quote('analysed_at')} = excluded.{quote('analysed_at')}"
    )


def _marker_upsert_sql() -> str:
    """The marker INSERT of one recorded answer (see answer_analyse)."""
    sql = _sql_cache.get(("marker",))
    if sql is None:
        insert = _values_insert_sql(AnalysedAnswer, _MARKER_COLUMNS, 1).removesuffix(" DO NOTHING")
        sql = _sql_cache[("marker",)] = f"{insert} {_marker_lower_sql()}"
    return sql


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
    matcher = matcher_at(workspace_id=workspace_id, revision=revision, fresh=True)
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
    # Figures first: once the workspace no longer says "re-analysis pending", its trend is up to date.
    workspace_aggregates_rebuild(workspace_id=workspace_id)
    AnalysisState.objects.filter(workspace_id=workspace_id, revision=revision).update(
        reanalysed_revision=revision, reanalysed_at=timezone.now(), reanalysed_version=ANALYSIS_VERSION
    )
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
