"""At-least-once delivery with exactly-once effects: the recovery sweep and its runner.

Huey's Redis queue pops a message and keeps no acknowledgement, so a killed consumer loses the
items it held, and a Redis restarted empty loses queues and progress. The database knows every
item's state, so a sweep that runs inside the live consumers (one at a time, by a Redis lock):
- fails items of groups past AGENT_GROUP_DEADLINE_SECONDS ("deadline exceeded"),
- puts back on the queue running items whose heartbeat stopped, and queued items overdue by
  AGENT_RECOVERY_SECONDS that their queue no longer holds (in a cancelled group they end
  cancelled instead: cancelling means nothing new starts),
- reconciles each unfinished group's progress object with the rows (idempotent merge), and
- closes groups whose items are all finished.
Pushing an item twice is harmless: only a queued item starts, and recording succeeds once.
"""
from __future__ import annotations

import logging
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Count, Q
from django.utils import timezone

from agent import progress
from agent.connections import redis_client
from agent.models import JobGroup, JobItem
from agent.queues import queue_key
from agent.services.closing import job_group_finalize
from agent.tasks import QueuedItem, item_messages_push_on

logger = logging.getLogger(__name__)

SWEEP_LOCK_KEY = "oneglanse:recovery:lock"
# A queued item overdue by this many recovery windows is pushed again even while its queue
# still has a backlog: the backlog may be new work while the item itself was lost.
BACKLOG_PATIENCE_WINDOWS = 10
# A running item lost this many times more than the attempts allow is failed, so an item
# that kills its worker (say, out of memory) cannot crash-loop the consumers forever.
EXTRA_LOSSES_ALLOWED = 2


@dataclass
class SweepReport:
    requeued: dict[str, int] = field(default_factory=dict)
    deadline_failed: int = 0
    lost_too_often: int = 0
    cancelled: int = 0
    progress_rebuilt: int = 0
    groups_closed: int = 0

    def __bool__(self) -> bool:
        return bool(sum(self.requeued.values()) or self.deadline_failed or self.lost_too_often
                    or self.cancelled or self.progress_rebuilt or self.groups_closed)


def _open_groups() -> Q:
    return Q(status__in=JobGroup.UNFINISHED) | Q(status=JobGroup.Status.CANCELLED, finished_at__isnull=True)


def recovery_sweep(*, now=None) -> SweepReport:
    """One pass over every unfinished group; safe to run beside live workers and other sweeps."""
    now = now or timezone.now()
    report = SweepReport()
    window = timedelta(seconds=settings.AGENT_RECOVERY_SECONDS)
    open_group_ids = list(JobGroup.objects.filter(_open_groups()).values_list("id", flat=True))
    if not open_group_ids:
        return report

    deadline = now - timedelta(seconds=settings.AGENT_GROUP_DEADLINE_SECONDS)
    expired = JobGroup.objects.filter(id__in=open_group_ids, created_at__lt=deadline).values("id")
    report.deadline_failed = JobItem.objects.filter(group_id__in=expired, status__in=JobItem.UNFINISHED).update(
        status=JobItem.Status.FAILED, finished_at=now, error="deadline exceeded (AGENT_GROUP_DEADLINE_SECONDS)"
    )

    cancelled_group_ids = set(
        JobGroup.objects.filter(id__in=open_group_ids, status=JobGroup.Status.CANCELLED).values_list("id", flat=True)
    )
    to_push: dict[str, list[QueuedItem]] = {}
    stale_running = JobItem.objects.filter(
        group_id__in=open_group_ids, status=JobItem.Status.RUNNING, heartbeat_at__lt=now - window
    ).values_list("id", "group_id", "provider", "attempts")
    for item_id, group_id, provider_id, attempts in stale_running:
        stale = JobItem.objects.filter(id=item_id, status=JobItem.Status.RUNNING, heartbeat_at__lt=now - window)
        if group_id in cancelled_group_ids:
            report.cancelled += stale.update(
                status=JobItem.Status.CANCELLED, finished_at=now,
                error="cancelled: the worker running it was lost after the group was cancelled",
            )
        elif attempts >= settings.AGENT_MAX_ATTEMPTS + EXTRA_LOSSES_ALLOWED:
            report.lost_too_often += stale.update(
                status=JobItem.Status.FAILED, finished_at=now,
                error=f"{provider_id}: the worker running this item was lost {attempts} times; giving up",
            )
        elif stale.update(status=JobItem.Status.QUEUED, next_attempt_at=now):
            to_push.setdefault(provider_id, []).append(QueuedItem(item_id, str(group_id), provider_id))

    if cancelled_group_ids:
        # A retry or rate-limit wait put these back on the queue after the group was cancelled.
        report.cancelled += JobItem.objects.filter(
            group_id__in=cancelled_group_ids, status=JobItem.Status.QUEUED
        ).update(status=JobItem.Status.CANCELLED, finished_at=now, error="cancelled before it started")
    overdue = list(
        JobItem.objects.filter(group_id__in=open_group_ids, status=JobItem.Status.QUEUED)
        .filter(Q(next_attempt_at__lt=now - window) | Q(next_attempt_at__isnull=True))
        .values_list("id", "group_id", "provider", "next_attempt_at")
    )
    if overdue:
        backlog = _queue_lengths({provider_id for _, _, provider_id, _ in overdue})
        lost = [
            QueuedItem(item_id, str(group_id), provider_id)
            for item_id, group_id, provider_id, due in overdue
            if backlog[provider_id] == 0 or due is None or due < now - window * BACKLOG_PATIENCE_WINDOWS
        ]
        # Due again from now, so the next sweeps give the pushed message a full window.
        JobItem.objects.filter(id__in=[item.item_id for item in lost], status=JobItem.Status.QUEUED).update(
            next_attempt_at=now
        )
        for item in lost:
            to_push.setdefault(item.provider_id, []).append(item)

    if to_push:
        pipeline = redis_client().pipeline(transaction=False)
        for provider_id, items in to_push.items():
            item_messages_push_on(pipeline, provider_id=provider_id, items=items)
        pipeline.execute()
        report.requeued = {p: len(items) for p, items in to_push.items()}
        logger.warning("recovery: put lost items back on their queues: %s", report.requeued)

    report.progress_rebuilt = _progress_reconcile(open_group_ids)

    still_running = set(
        JobItem.objects.filter(group_id__in=open_group_ids, status__in=JobItem.UNFINISHED)
        .order_by().values_list("group_id", flat=True).distinct()
    )
    for group_id in open_group_ids:
        if group_id not in still_running:
            report.groups_closed += job_group_finalize(group_id=group_id)  # it settles the providers too
    return report


def _queue_lengths(provider_ids: set[str]) -> dict[str, int]:
    pipeline = redis_client().pipeline(transaction=False)
    for provider_id in sorted(provider_ids):
        pipeline.llen(queue_key(provider_id))
    return dict(zip(sorted(provider_ids), pipeline.execute(), strict=True))


def _progress_reconcile(group_ids: list) -> int:
    """Merge the rows into every progress object that is missing or counts fewer items than the rows."""
    finished = dict(
        JobItem.objects.filter(group_id__in=group_ids, status__in=JobItem.FINISHED)
        .values_list("group_id").annotate(n=Count("id"))
    )
    pipeline = redis_client().pipeline(transaction=False)
    for group_id in group_ids:
        pipeline.hget(progress.progress_key(group_id), "n")
    rebuilt = 0
    for group_id, counted in zip(group_ids, pipeline.execute(), strict=True):
        if counted is None or int(counted) < finished.get(group_id, 0):
            progress.progress_rebuild(group_id)
            rebuilt += 1
    return rebuilt


class RecoverySweeper(threading.Thread):
    """Runs the sweep about every AGENT_RECOVERY_INTERVAL seconds in whichever consumers are alive.

    Every consumer ticks at half the interval (with jitter); a tick sweeps only if it can take
    a Redis lock that lives one interval, so across all hosts one sweep runs per interval.
    """

    def __init__(self) -> None:
        super().__init__(name="recovery-sweeper", daemon=True)
        self.stop_event = threading.Event()
        self.token = uuid.uuid4().hex

    def run(self) -> None:
        interval = settings.AGENT_RECOVERY_INTERVAL
        while not self.stop_event.wait(interval / 2 * random.uniform(0.8, 1.2)):
            self.tick(interval)

    def tick(self, interval: float) -> SweepReport | None:
        try:
            if not redis_client().set(SWEEP_LOCK_KEY, self.token, nx=True, px=max(100, int(interval * 1000))):
                return None
            close_old_connections()
            report = recovery_sweep()
            if report:
                logger.info("recovery sweep: %s", report)
            return report
        except redis.RedisError as exc:
            logger.warning("recovery sweep skipped: Redis unavailable (%s)", exc)
        except Exception:  # the database may be away; the next tick tries again
            logger.exception("recovery sweep failed; the next tick tries again")
        finally:
            connection.close()
        return None


def recovery_sweeper_start() -> RecoverySweeper:
    sweeper = RecoverySweeper()
    sweeper.start()
    return sweeper
