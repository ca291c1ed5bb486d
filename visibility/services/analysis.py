"""Analysing answers: one answer when it is recorded, or stored answers in batches (the sweep).

A re-analysis batch is written under the workspace's AnalysisState row lock, only if the brand
revision it was computed for is still current. A recorded answer's analysis takes no lock: it is
stamped with the revision its (cached) matcher was built for, and the sweep re-analyses it if that
is stale; `findings_write` says why concurrent writers still end right.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from agent.models import JobGroup, JobItem
from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS
from visibility.detection import ANALYSIS_VERSION, AnswerAnalysis, Matcher
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
    """INSERT many plain tuples, skipping rows already there (another writer's, see findings_write):
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
    # In item order, as every writer of these rows: see _findings_rows_write.
    for item_id, group_id, provider, prompt_id, text, sources in sorted(rows, key=lambda row: row[0]):
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


@dataclass(frozen=True)
class RecordedFindings:
    """One recorded answer's analysis (`findings_pack`), waiting to be written as rows."""

    item_id: int
    group_id: str
    provider: str
    findings: dict


FINDINGS_KEY = "visibility"  # this app's key in JobItem.findings


def findings_pack(result: AnswerAnalysis, *, revision: int) -> dict:
    """An answer's analysis as stored on its item (compact: it is on every ok answer's row)."""
    return {
        "version": ANALYSIS_VERSION,
        "revision": revision,
        "brands": [[f.brand_id, f.mentions, f.first_offset, f.rank, f.citations] for f in result.findings],
        "domains": result.cited_domains,
    }


def findings_unpack(stored) -> dict | None:
    """This app's packed findings from a JobItem.findings value, or None when absent or made by another
    ANALYSIS_VERSION (such an answer is analysed again from its text)."""
    packed = stored.get(FINDINGS_KEY) if isinstance(stored, dict) else None
    if isinstance(packed, dict) and packed.get("version") == ANALYSIS_VERSION:
        return packed
    return None


def answer_findings(*, group_id: str, text: str, sources) -> dict | None:
    """Analyse an answer about to be recorded with its workspace's current brands; None when the run is gone.

    The brand revision and matcher come from `cached_matcher`, which may lag a brand edit by
    VISIBILITY_MATCHER_TTL seconds: the findings carry the revision the matcher was built for, so
    an answer analysed with yesterday's brands is stale and the sweep re-analyses it
    (`stale_analysed_item_ids`).
    """
    workspace_key = group_workspace_key(group_id)
    if workspace_key is None:
        return None
    revision, matcher = cached_matcher(workspace_key=workspace_key)
    return findings_pack(matcher.analyse(text, sources if isinstance(sources, list) else []), revision=revision)


def answer_analyse(*, item_id: int, recorded: RecordedAnswer | None = None) -> bool:
    """Analyse one recorded answer and write its rows now; False when the item is gone, not an ok
    answer, or its rows could not be written (logged; the sweep retries it).

    `recorded` carries the answer; without it (the run's close, a test) it is read from the database.
    """
    if recorded is None:
        recorded = _recorded_answer_get(item_id)
        if recorded is None:
            return False
    findings = answer_findings(group_id=recorded.group_id, text=recorded.text, sources=recorded.sources)
    if findings is None:
        return False
    entry = RecordedFindings(
        item_id=recorded.item_id, group_id=recorded.group_id, provider=recorded.provider, findings=findings
    )
    return findings_write([entry]) == 1


def findings_write(entries: list[RecordedFindings]) -> int:
    """Write the rows of recorded answers' findings; returns how many answers' rows were written.

    A batch is a few multi-row statements. If it fails, each answer is written alone, so one that
    cannot be written (a brand deleted behind the services' back) costs only its own rows; it is
    logged and left without a marker, which the sweep retries. With the database away nothing is
    retried here: the findings stay on the answers' rows, and the run's close or the sweep writes them.

    Why concurrent writers of one answer's rows (a batch here, a sweep's re-analysis) always end
    right, without a lock or a transaction here:
    - Mentions and domains go first, the marker last, in separate autocommit statements: a failure
      half-way leaves no marker, and the sweep retries answers with none.
    - Every INSERT skips rows already there (ON CONFLICT DO NOTHING), so meeting another writer is
      never an error; it may leave a mix of two writers' mention rows.
    - A marker written over an existing one keeps the lower revision and version of the two
      (`_marker_lower_sql`): whenever two writers with different brands met on an answer, its marker
      says stale and the sweep re-analyses it from scratch.
    - A sweep batch locks the markers it rewrites (`_rows_write`) and the workspace's state row,
      so a marker written here, if it lands on one of them, waits for the batch to commit and
      then lowers it. Markers stamped by the batch itself are only ever raised to the revision
      read under that lock, with brands read at that revision.
    """
    if not entries:
        return 0
    try:
        _findings_rows_write(entries)
        return len(entries)
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        logger.warning("the analyses of %d answers were not written (%s); their run's close or the visibility "
                       "sweep writes them", len(entries), exc)
        return 0
    except DatabaseError:
        if len(entries) == 1:
            logger.exception("the analysis of item %s could not be written; the visibility sweep retries it",
                             entries[0].item_id)
            return 0
        logger.warning("a batch of %d analyses failed; writing them one by one", len(entries), exc_info=True)
    return sum(findings_write([entry]) for entry in entries)


def _findings_rows_write(entries: list[RecordedFindings]) -> None:
    mentions, domains, markers = [], [], []
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    run_keys: dict[str, tuple | None] = {}  # a batch holds a few runs' answers
    # Every writer inserts in item order: on PostgreSQL two writers meeting on the same answers
    # (a batch and a closing run, or a sweep batch) then wait for each other, never deadlock.
    for entry in sorted(entries, key=lambda entry: entry.item_id):
        if entry.group_id not in run_keys:
            workspace_key = group_workspace_key(entry.group_id)
            run_keys[entry.group_id] = None if workspace_key is None else (workspace_key, uuid_db(entry.group_id))
        keys = run_keys[entry.group_id]
        if keys is None:
            continue  # the run was deleted meanwhile, with its answers
        # prompt_id is read from the item by the INSERT itself (the recorder does not hold it): the item id again.
        head = (entry.item_id, *keys, entry.provider, entry.item_id)
        found, version = entry.findings, entry.findings["version"]
        mentions.extend(
            (*head, brand_id, count > 0, count, first_offset, rank, citations > 0, citations, version)
            for brand_id, count, first_offset, rank, citations in found["brands"]
        )
        domains.extend((*head, domain[:255]) for domain in found["domains"])
        markers.append((*head, version, found["revision"], stamp))
    with connection.cursor() as cursor:
        for sql_for, columns, rows in (
            (lambda n: _values_insert_sql(Mention, _MENTION_COLUMNS, n), _MENTION_COLUMNS, mentions),
            (lambda n: _values_insert_sql(CitedDomain, _DOMAIN_COLUMNS, n), _DOMAIN_COLUMNS, domains),
            (_marker_upsert_sql, _MARKER_COLUMNS, markers),  # last: see findings_write
        ):
            per_statement = _rows_per_statement(len(columns))
            for start in range(0, len(rows), per_statement):
                chunk = rows[start : start + per_statement]
                _statement_run(cursor, sql_for(len(chunk)), [value for row in chunk for value in row])


def _rows_per_statement(columns: int) -> int:
    # Large enough that a second's answers are a few statements, within the database's parameter limit.
    limit = connection.features.max_query_params or 65535
    return max(1, min(500, limit // columns))


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


def _marker_upsert_sql(rows: int) -> str:
    """The marker INSERT of `rows` recorded answers (see findings_write)."""
    sql = _sql_cache.get(("marker", rows))
    if sql is None:
        insert = _values_insert_sql(AnalysedAnswer, _MARKER_COLUMNS, rows).removesuffix(" DO NOTHING")
        sql = _sql_cache[("marker", rows)] = f"{insert} {_marker_lower_sql()}"
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
