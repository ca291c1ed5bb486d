"""Closing a run: count a finished item, settle its providers, finalise it; and fail or cancel it.

Counting a finished item is where a run closes: when the progress object says the item was a
provider's last (or the run's), the provider rows and the group row are written here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

import redis
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from agent import outcomes, progress
from agent.models import JobGroup, JobGroupProvider, JobItem
from agent.run_status import job_group_status_changed
from agent.signals import announce, job_group_closed
from oneglanse.exceptions import Conflict

logger = logging.getLogger(__name__)


def item_count_and_close(
    *, group_id: UUID | str, item_id: int, provider_id: str, status: str, error: str = "", latency_ms: int | None = None
) -> None:
    """Count a finished item in the progress object (and the cluster metrics), once; settle its
    provider and close the run when the object says this item was the provider's (or the run's) last."""
    counted = progress.progress_item_finished(
        group_id=group_id, item_id=item_id, provider=provider_id, status=status, error=error, latency_ms=latency_ms
    )
    if counted.provider_done:
        job_group_provider_settle(group_id=group_id, provider_id=provider_id)
    if counted.group_done:
        job_group_finalize(group_id=group_id)


def job_group_provider_settle(*, group_id: UUID | str, provider_id: str) -> None:
    """Write a provider's final status once all its items are finished (forward only)."""
    counts = dict(
        JobItem.objects.filter(group_id=group_id, provider=provider_id).values_list("status").annotate(n=Count("id"))
    )
    if any(counts.get(s) for s in JobItem.UNFINISHED):
        return
    failed = counts.get(JobItem.Status.FAILED, 0)
    status = outcomes.provider_final_state(ok=counts.get(JobItem.Status.OK, 0), failed=failed)
    if status == outcomes.FAILED:
        error = (
            JobItem.objects.filter(group_id=group_id, provider=provider_id, status=JobItem.Status.FAILED)
            .order_by("-finished_at").values_list("error", flat=True).first()
        )
        error = f"all {failed} items failed; last error: {error}"
    else:
        error = ""
    now = timezone.now()
    JobGroupProvider.objects.filter(group_id=group_id, provider=provider_id).exclude(
        status__in=[JobGroupProvider.Status.COMPLETED, JobGroupProvider.Status.FAILED]
    ).update(status=status, error=error, finished_at=now)
    JobGroupProvider.objects.filter(group_id=group_id, provider=provider_id, started_at__isnull=True).update(started_at=now)


def job_group_finalize(*, group_id: UUID | str) -> bool:
    """Close a group whose items are all finished: final provider rows, status, progress mirror.

    Idempotent and race-safe (a conditional update); returns True only for the call that closed it.
    """
    if JobItem.objects.filter(group_id=group_id, status__in=JobItem.UNFINISHED).exists():
        return False
    for provider_id in JobGroupProvider.objects.filter(group_id=group_id).exclude(
        status__in=[JobGroupProvider.Status.COMPLETED, JobGroupProvider.Status.FAILED]
    ).values_list("provider", flat=True):
        job_group_provider_settle(group_id=group_id, provider_id=provider_id)
    group = JobGroup.objects.get(id=group_id)
    if group.status not in JobGroup.UNFINISHED and group.status != JobGroup.Status.CANCELLED:
        return False
    final = progress.progress_from_database(group)
    try:
        live = progress.progress_read_live(group_id)
    except redis.RedisError:
        live = None
    if live is not None:
        # Keep the live updateId so a poller's last seen value never goes backwards.
        final["updateId"] = max(final["updateId"], live["updateId"])
    closing = Q(status__in=JobGroup.UNFINISHED) | Q(status=JobGroup.Status.CANCELLED, finished_at__isnull=True)
    closed = JobGroup.objects.filter(closing, id=group_id).update(
        status=JobGroup.Status.CANCELLED if group.status == JobGroup.Status.CANCELLED else JobGroup.Status.COMPLETED,
        progress=final,
        finished_at=timezone.now(),
    )
    if closed:
        job_group_status_changed(group_id)
        logger.info("group %s finished: %s", group_id, final["stats"])
        transaction.on_commit(lambda: announce(job_group_closed, group_id=group_id))
    return bool(closed)


def job_group_fail(*, group_id: UUID | str, error: str) -> None:
    """The group itself could not run: it ends failed, with every unfinished item failed too."""
    now = timezone.now()
    with transaction.atomic():
        JobItem.objects.filter(group_id=group_id, status__in=JobItem.UNFINISHED).update(
            status=JobItem.Status.FAILED, error=error, finished_at=now
        )
        JobGroupProvider.objects.filter(group_id=group_id).exclude(
            status__in=[JobGroupProvider.Status.COMPLETED, JobGroupProvider.Status.FAILED]
        ).update(status=JobGroupProvider.Status.FAILED, error=error, finished_at=now)
        group = JobGroup.objects.select_for_update().get(id=group_id)
        if group.status in JobGroup.UNFINISHED:
            group.status = JobGroup.Status.FAILED
            group.error = error
            group.finished_at = now
            group.progress = progress.progress_from_database(group)
            group.save(update_fields=["status", "error", "finished_at", "progress"])
            job_group_status_changed(group_id)


@dataclass(frozen=True)
class Cancelled:
    job_group: JobGroup
    cancelled_items: int
    running_items: int


def job_group_cancel(*, group: JobGroup) -> Cancelled:
    """Stop a group: items not started end cancelled, running items finish, answers are kept."""
    with transaction.atomic():
        locked = JobGroup.objects.select_for_update().get(id=group.id)
        if locked.status not in (*JobGroup.UNFINISHED, JobGroup.Status.SCHEDULED):
            raise Conflict(f"This run is already {locked.status}; there is nothing left to cancel.")
        # One conditional UPDATE, with no list of ids (a run of any size stays far below SQLite's
        # bound-variable limit): a worker's claim is conditional too, so each item is either
        # started or cancelled, never both.
        cancelled = JobItem.objects.filter(group=locked, status=JobItem.Status.QUEUED).update(
            status=JobItem.Status.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
        )
        locked.status = JobGroup.Status.CANCELLED
        locked.save(update_fields=["status"])
        job_group_status_changed(locked.id)
    running = JobItem.objects.filter(group=locked, status=JobItem.Status.RUNNING).count()
    try:
        # The rebuild merges every finished row (the cancelled ones included) idempotently.
        progress.progress_rebuild(locked.id)
    except redis.RedisError as exc:
        logger.warning("group %s cancelled; progress will be rebuilt later (Redis: %s)", locked.id, exc)
    for provider_id in locked.providers:
        job_group_provider_settle(group_id=locked.id, provider_id=provider_id)
    job_group_finalize(group_id=locked.id)
    locked.refresh_from_db()
    logger.info("group %s cancelled: %d items cancelled, %d running items will finish", locked.id, cancelled, running)
    return Cancelled(job_group=locked, cancelled_items=cancelled, running_items=running)
