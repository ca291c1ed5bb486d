"""Analysing answers: each one as it is recorded, stored answers again after a brand change.

An answer's analysis is its findings (`findings_pack`): which tracked brands it mentions and cites,
how often, where and in which rank, and the domains it cites. They are stored on the answer's own
row, under this app's key of `JobItem.findings`:
- as the answer is recorded, by the agent's UPDATE that records it (the `answer_findings` signal):
  the analysis of an answer costs no write, no row and no commit of its own;
- afterwards only by a re-analysis (`items_analyse`, `workspace_reanalyse`), which rewrites this
  key and nothing else of the row.
Everything visibility shows is computed from them: a run's figures when it closes (aggregates.py),
a live run's on each read (selectors.py).

A re-analysis batch is written under the workspace's AnalysisState row lock, only if the brand
revision it was computed for is still current. A recorded answer's analysis takes no lock: it is
stamped with the revision its (cached) matcher was built for, and its run's close analyses again
every answer stamped with an older revision than the workspace's (`runs_findings_complete`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from agent.models import JobGroup, JobItem
from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS
from visibility.detection import ANALYSIS_VERSION, AnswerAnalysis, Matcher
from visibility.models import AnalysisState
from visibility.services.matchers import cached_matcher, group_workspace_key, matcher_at

logger = logging.getLogger(__name__)

# A few thousand answers per transaction: large enough that per-batch costs vanish, small
# enough that the lock is held well under a second and memory stays flat.
REANALYSE_BATCH_SIZE = 2000
_ITEM_FIELDS = ("id", "text", "sources", "findings")

FINDINGS_KEY = "visibility"  # this app's key in JobItem.findings


@dataclass(frozen=True)
class Reanalysed:
    answers: int
    seconds: float
    finished: bool  # False when a newer brand change took over half-way
    revision: int


def _state_get(workspace_id) -> AnalysisState:
    state, _ = AnalysisState.objects.get_or_create(workspace_id=workspace_id)
    return state


def findings_pack(result: AnswerAnalysis, *, revision: int) -> dict:
    """An answer's analysis as stored on its item (compact: it is on every ok answer's row)."""
    return {
        "version": ANALYSIS_VERSION,
        "revision": revision,
        "brands": [[f.brand_id, f.mentions, f.first_offset, f.rank, f.citations] for f in result.findings],
        # As long as the per-run figures store (an imported source's host may be longer); distinct still.
        "domains": list(dict.fromkeys(domain[:255] for domain in result.cited_domains)),
    }


def findings_unpack(stored) -> dict | None:
    """This app's packed findings from a JobItem.findings value, or None when absent or made by another
    ANALYSIS_VERSION (such an answer counts as not analysed until it is analysed again)."""
    packed = stored.get(FINDINGS_KEY) if isinstance(stored, dict) else None
    if isinstance(packed, dict) and packed.get("version") == ANALYSIS_VERSION:
        return packed
    return None


def findings_decode(stored: str | None) -> dict | None:
    """`findings_unpack` of JobItem.findings as stored (JSON text), for reads of many answers."""
    return None if stored is None else findings_unpack(orjson.loads(stored))


def answer_findings(*, group_id: str, text: str, sources) -> dict | None:
    """Analyse an answer about to be recorded with its workspace's current brands; None when the run is gone.

    The brand revision and matcher come from `cached_matcher`, which may lag a brand edit by
    VISIBILITY_MATCHER_TTL seconds: the findings carry the revision the matcher was built for, so
    an answer analysed with outdated brands is analysed again when its run closes.
    """
    workspace_key = group_workspace_key(group_id)
    if workspace_key is None:
        return None
    revision, matcher = cached_matcher(workspace_key=workspace_key)
    return findings_pack(matcher.analyse(text, sources if isinstance(sources, list) else []), revision=revision)


def findings_store(updates: list[tuple[int, dict]]) -> None:
    """Write (item id, whole findings) pairs onto the items, in one executemany."""
    field = JobItem._meta.get_field("findings")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {quote(JobItem._meta.db_table)} SET {quote('findings')} = %s WHERE {quote('id')} = %s",
            [(field.get_db_prep_value(findings, connection), item_id) for item_id, findings in updates],
        )


def _rows_analyse(rows: list[tuple], *, matcher: Matcher, revision: int) -> None:
    """Analyse (id, text, sources, findings) rows and store their findings, other apps' keys kept.

    In item order, as every writer of these rows: on PostgreSQL two re-analyses meeting on the same
    answers then wait for each other instead of deadlocking.
    """
    updates = []
    for item_id, text, sources, stored in sorted(rows, key=lambda row: row[0]):
        findings = dict(stored) if isinstance(stored, dict) else {}
        findings[FINDINGS_KEY] = findings_pack(
            matcher.analyse(text, sources if isinstance(sources, list) else []), revision=revision
        )
        updates.append((item_id, findings))
    findings_store(updates)


def items_analyse(*, item_ids: list[int]) -> set:
    """Analyse the given ok answers with their workspaces' current brands, one short transaction per
    workspace; returns their run ids."""
    by_workspace: dict = defaultdict(list)
    for row in JobItem.objects.filter(id__in=item_ids, status=JobItem.Status.OK).values_list(
        *_ITEM_FIELDS, "group_id", "group__workspace_id"
    ):
        by_workspace[row[-1]].append(row[:-1])
    groups = set()
    for workspace_id, rows in by_workspace.items():
        _state_get(workspace_id)
        with transaction.atomic():
            revision = (
                AnalysisState.objects.select_for_update()
                .values_list("revision", flat=True)
                .get(workspace_id=workspace_id)
            )
            # Fresh: an answer analysed again may have failed on a brand since changed behind the services' back.
            matcher = matcher_at(workspace_id=workspace_id, revision=revision, fresh=True)
            _rows_analyse([row[:-1] for row in rows], matcher=matcher, revision=revision)
        groups.update(row[-1] for row in rows)
    return groups


def runs_findings_complete(*, workspace_id, group_ids: list, by: tuple[str, ...]) -> tuple[dict, int, int | None]:
    """Analyse again the ok answers of these runs (of one workspace) whose findings are missing (their
    analysis failed when they were recorded), of another ANALYSIS_VERSION, or made with brands older
    than the workspace's (a consumer's cached brands lagged a brand edit). Returns the runs' counts
    grouped by `by` (selectors' `visibility_counts`), counted after that, how many answers were
    analysed again, and the brand revision every counted answer is at (None if brand edits kept
    outdating them meanwhile: such counts must not be written; the edits' re-analysis writes them).

    Called before runs' figures are written, so they count every answer with the current brands:
    one read of the runs' findings when none is outdated, the usual case.
    """
    from visibility.selectors import counts_and_outdated

    analysed_again = 0
    for _attempt in range(3):
        revision = (
            AnalysisState.objects.filter(workspace_id=workspace_id).values_list("revision", flat=True).first() or 0
        )
        counts, outdated = counts_and_outdated(group_ids=group_ids, by=by, revision=revision)
        if not outdated:
            return counts, analysed_again, revision
        for start in range(0, len(outdated), REANALYSE_BATCH_SIZE):
            items_analyse(item_ids=outdated[start : start + REANALYSE_BATCH_SIZE])
        analysed_again += len(outdated)
    return counts, analysed_again, None


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


def workspace_reanalyse(
    *, workspace_id, batch_size: int = REANALYSE_BATCH_SIZE, keep_alive: Callable[[], None] | None = None
) -> Reanalysed:
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
            _rows_analyse(rows, matcher=matcher, revision=revision)
        total += len(rows)
        if keep_alive is not None:
            keep_alive()
    # Figures first: once the workspace no longer says "re-analysis pending", its trend is up to date.
    workspace_aggregates_rebuild(workspace_id=workspace_id)
    AnalysisState.objects.filter(workspace_id=workspace_id, revision=revision).update(
        reanalysed_revision=revision, reanalysed_at=timezone.now(), reanalysed_version=ANALYSIS_VERSION
    )
    return Reanalysed(answers=total, seconds=time.monotonic() - started, finished=True, revision=revision)


def workspaces_reanalyse_pending(*, keep_alive: Callable[[], None] | None = None) -> list[Reanalysed]:
    """Re-analyse every workspace whose brands changed since its last full re-analysis, or whose last
    one used an older ANALYSIS_VERSION. Called by the visibility sweep in the consumers; a brand edit
    only moves the revision, so the request that made it stays fast. A workspace that fails (a brand
    broken from a shell) is logged and left pending; the others are not held up by it."""
    from django.db.models import F

    pending = (
        AnalysisState.objects.filter(
            Q(reanalysed_revision__lt=F("revision")) | Q(reanalysed_version__lt=ANALYSIS_VERSION)
        )
        .order_by("workspace_id")
        .values_list("workspace_id", flat=True)
    )
    done = []
    for workspace_id in list(pending):
        try:
            done.append(workspace_reanalyse(workspace_id=workspace_id, keep_alive=keep_alive))
        except DATABASE_UNAVAILABLE_ERRORS:
            raise  # the next pass tries again; no use trying every other workspace now
        except Exception:
            logger.exception("re-analysis of workspace %s failed; the next pass tries again", workspace_id)
    return done
