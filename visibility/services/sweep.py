"""The visibility sweep: runs inside the queue consumers, a few seconds apart, one at a time cluster-wide.

Each pass (1) re-analyses every workspace whose brands changed since its last full re-analysis
(a brand edit only marks the workspace pending, so the request stays fast), then (2) writes the
figures of runs that finished recently without any (their close failed to write them, or the
consumer closing them stopped half-way). An answer whose analysis failed or used outdated brands
is analysed again when its run's figures are written. Nothing here asks a provider again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from agent.connections import redis_client
from agent.models import JobGroup
from visibility.models import RunStat
from visibility.selectors import FINISHED_RUN_STATUSES
from visibility.services.aggregates import job_group_visibility_aggregate
from visibility.services.analysis import Reanalysed, workspaces_reanalyse_pending

logger = logging.getLogger(__name__)

SWEEP_LOCK_KEY = "oneglanse:visibility:sweep"
# Runs closed this recently are left alone: their own close may still be writing their figures.
FIGURES_GRACE = timedelta(seconds=60)
# Older runs are not looked at by the periodic pass; `manage.py visibility_reanalyse` rewrites
# every run's figures on demand.
FIGURES_WINDOW = timedelta(days=1)
# Runs given figures per pass (the rest wait for the next), and how long one whose figures failed
# is left alone: a run that cannot be counted is not read again every few seconds for a day.
FIGURES_BATCH = 100
FIGURES_RETRY_SECONDS = 300
_FIGURES_FAILED_KEY = "oneglanse:visibility:figures-failed:{group_id}"
# Shortens the lock, if still ours, to expire when the next pass is due.
_KEEP_UNTIL_LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)


@dataclass
class VisibilitySweepReport:
    reanalysed: list[Reanalysed] = field(default_factory=list)
    runs_refreshed: int = 0

    def __bool__(self) -> bool:
        return bool(self.reanalysed or self.runs_refreshed)


def runs_without_figures(*, now=None, limit: int = FIGURES_BATCH) -> list[JobGroup]:
    """Runs finished within FIGURES_WINDOW (less the grace) that have no figures, oldest first."""
    now = now or timezone.now()
    return list(
        JobGroup.objects.filter(
            status__in=FINISHED_RUN_STATUSES,
            finished_at__gte=now - FIGURES_WINDOW,
            finished_at__lt=now - FIGURES_GRACE,
        )
        .filter(~Exists(RunStat.objects.filter(group_id=OuterRef("id"))))
        .order_by("finished_at")[:limit]
    )


def visibility_sweep(*, now=None, keep_alive: Callable[[], None] | None = None) -> VisibilitySweepReport:
    """One pass: pending re-analyses first (a brand edit shows within a minute), then runs without figures.

    `keep_alive` is called between batches of a long pass (the sweeper extends its lock with it).
    """
    report = VisibilitySweepReport()
    report.reanalysed = workspaces_reanalyse_pending(keep_alive=keep_alive)
    client = redis_client()
    for group in runs_without_figures(now=now):
        failed_key = _FIGURES_FAILED_KEY.format(group_id=group.id)
        try:
            if client.exists(failed_key):
                continue
        except redis.RedisError:
            pass  # without Redis, every pass retries it
        try:
            job_group_visibility_aggregate(group=group)
            report.runs_refreshed += 1
        except Exception:  # one run that cannot be counted (a brand broken from a shell) must not hold up the rest
            logger.exception("visibility figures of run %s failed again; retried in %d s", group.id,
                             FIGURES_RETRY_SECONDS)
            try:
                client.set(failed_key, 1, ex=FIGURES_RETRY_SECONDS)
            except redis.RedisError:
                pass
        if keep_alive is not None:
            keep_alive()
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

        def keep_alive() -> None:
            # A pass longer than the lock (a workspace of a million answers re-analysed) keeps it, while ours.
            try:
                client.eval(_KEEP_UNTIL_LUA, 1, SWEEP_LOCK_KEY, self.token, lock_ms)
            except redis.RedisError:
                pass

        try:
            close_old_connections()
            report = visibility_sweep(keep_alive=keep_alive)
            if report:
                logger.info(
                    "visibility sweep: %d workspaces re-analysed (%d answers), figures of %d runs written",
                    len(report.reanalysed),
                    sum(r.answers for r in report.reanalysed),
                    report.runs_refreshed,
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
