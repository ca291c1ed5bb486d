"""The visibility sweep: runs inside the queue consumers, a few seconds apart, one at a time cluster-wide.

Each pass (1) re-analyses every workspace whose brands changed since its last full re-analysis
(a brand edit only marks the workspace pending, so the request stays fast), (2) re-analyses, in a
bounded batch, answers stamped with an older brand revision than their workspace's (a consumer
analysed them with brands it had cached across the edit; of any age), then (3) retries, in a
bounded batch, recent ok answers whose analysis failed or is of an older ANALYSIS_VERSION, and
refreshes the figures of the finished runs those answers belong to. Nothing here asks a provider again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from agent.connections import redis_client
from agent.models import JobGroup, JobItem
from visibility.detection import ANALYSIS_VERSION
from visibility.models import AnalysedAnswer, AnalysisState
from visibility.selectors import FINISHED_RUN_STATUSES
from visibility.services.aggregates import _aggregates_write
from visibility.services.analysis import (
    _ITEM_FIELDS,
    Reanalysed,
    _rows_write,
    _state_get,
    workspaces_reanalyse_pending,
)
from visibility.services.matchers import matcher_at

logger = logging.getLogger(__name__)

SWEEP_LOCK_KEY = "oneglanse:visibility:sweep"
# Answers recorded this recently are left alone: their own analysis may still be under way.
RETRY_GRACE = timedelta(seconds=60)
# Older answers are not looked at by the periodic pass (it would scan a year of answers every few
# seconds); `manage.py visibility_reanalyse` repairs those on demand.
RETRY_WINDOW = timedelta(days=1)
# Shortens the lock, if still ours, to expire when the next pass is due.
_KEEP_UNTIL_LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)


@dataclass
class VisibilitySweepReport:
    reanalysed: list[Reanalysed] = field(default_factory=list)
    stale: int = 0
    retried: int = 0
    runs_refreshed: int = 0

    def __bool__(self) -> bool:
        return bool(self.reanalysed or self.stale or self.retried)


def unanalysed_recent_item_ids(*, now=None, limit: int) -> list[int]:
    """Ok answers recorded within RETRY_WINDOW (less the grace) with no analysis at this ANALYSIS_VERSION.

    `heartbeat_at` is the recording time of a finished item, and (status, heartbeat_at) is indexed.
    """
    now = now or timezone.now()
    current = AnalysedAnswer.objects.filter(item_id=OuterRef("id"), version=ANALYSIS_VERSION)
    return list(
        JobItem.objects.filter(
            status=JobItem.Status.OK, heartbeat_at__gte=now - RETRY_WINDOW, heartbeat_at__lt=now - RETRY_GRACE
        )
        .filter(~Exists(current))
        .order_by("heartbeat_at")
        .values_list("id", flat=True)[:limit]
    )


def stale_analysed_item_ids(*, limit: int) -> list[int]:
    """Answers whose analysis is stamped with an older brand revision than their workspace's.

    One probe of the (workspace, revision) index per workspace with brands, whatever the answers'
    age; a workspace whose full re-analysis is still pending is left to it.
    """
    stale = AnalysedAnswer.objects.filter(workspace_id=OuterRef("workspace_id"), revision__lt=OuterRef("revision"))
    workspaces = AnalysisState.objects.filter(Exists(stale), reanalysed_revision__gte=F("revision")).values_list(
        "workspace_id", "revision"
    )
    item_ids: list[int] = []
    for workspace_id, revision in workspaces:
        item_ids += AnalysedAnswer.objects.filter(workspace_id=workspace_id, revision__lt=revision).values_list(
            "item_id", flat=True
        )[: limit - len(item_ids)]
        if len(item_ids) >= limit:
            break
    return item_ids


def items_analyse(*, item_ids: list[int]) -> set:
    """Analyse the given ok answers, one short transaction per workspace; returns their run ids."""
    by_workspace: dict = defaultdict(list)
    for row in JobItem.objects.filter(id__in=item_ids, status=JobItem.Status.OK).values_list(
        *_ITEM_FIELDS, "group__workspace_id"
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
            _rows_write(
                rows,
                workspace_id=workspace_id,
                # Fresh: a retried answer may have failed on a brand since removed behind the services' back.
                matcher=matcher_at(workspace_id=workspace_id, revision=revision, fresh=True),
                revision=revision,
            )
        groups.update(row[1] for row in rows)
    return groups


def visibility_sweep(*, now=None, retry_limit: int | None = None) -> VisibilitySweepReport:
    """One pass: pending re-analyses first (a brand edit shows within a minute), then answers analysed
    with outdated brands, then failed analyses."""
    report = VisibilitySweepReport()
    report.reanalysed = workspaces_reanalyse_pending()
    limit = retry_limit if retry_limit is not None else settings.VISIBILITY_RETRY_BATCH
    stale_ids = stale_analysed_item_ids(limit=limit)
    retry_ids = unanalysed_recent_item_ids(now=now, limit=limit)
    item_ids = stale_ids + retry_ids
    if item_ids:
        # One transaction: no reader sees these answers analysed again while their runs' figures are old.
        with transaction.atomic():
            group_ids = items_analyse(item_ids=item_ids)
            finished = list(JobGroup.objects.filter(id__in=group_ids, status__in=FINISHED_RUN_STATUSES))
            _aggregates_write(finished)  # their figures were written without these answers
        report.stale, report.retried = len(stale_ids), len(retry_ids)
        report.runs_refreshed = len(finished)
    return report


class VisibilitySweeper(threading.Thread):
    """Runs `visibility_sweep` about every VISIBILITY_SWEEP_INTERVAL seconds in whichever consumers
    are alive. A Redis lock lets one pass run at a time across every host, and one per interval:
    at the end of a pass it is kept until the next one is due (expiring early if its holder dies),
    so ten consumers sweep no more often than one."""

    def __init__(self) -> None:
        super().__init__(name="visibility-sweeper", daemon=True)
        self.stop_event = threading.Event()
        self.token = uuid.uuid4().hex

    def run(self) -> None:
        interval = settings.VISIBILITY_SWEEP_INTERVAL
        while not self.stop_event.wait(interval * random.uniform(0.8, 1.2)):
            self.tick()

    def tick(self) -> VisibilitySweepReport | None:
        client = redis_client()
        try:
            lock_ms = max(1000, int(settings.VISIBILITY_SWEEP_LOCK_SECONDS * 1000))
            if not client.set(SWEEP_LOCK_KEY, self.token, nx=True, px=lock_ms):
                return None
        except redis.RedisError as exc:
            logger.warning("visibility sweep skipped: Redis unavailable (%s)", exc)
            return None
        began = time.monotonic()
        try:
            close_old_connections()
            report = visibility_sweep()
            if report:
                logger.info(
                    "visibility sweep: %d workspaces re-analysed (%d answers), %d outdated answers re-analysed, "
                    "%d answers retried",
                    len(report.reanalysed),
                    sum(r.answers for r in report.reanalysed),
                    report.stale,
                    report.retried,
                )
            return report
        except Exception:  # the database may be away; the next tick tries again
            logger.exception("visibility sweep failed; the next tick tries again")
            return None
        finally:
            connection.close()
            try:
                due_ms = int((began + settings.VISIBILITY_SWEEP_INTERVAL - time.monotonic()) * 1000)
                client.eval(_KEEP_UNTIL_LUA, 1, SWEEP_LOCK_KEY, self.token, max(1, due_ms))
            except redis.RedisError:
                pass  # the lock expires by itself


def visibility_sweeper_start() -> VisibilitySweeper:
    sweeper = VisibilitySweeper()
    sweeper.start()
    return sweeper
