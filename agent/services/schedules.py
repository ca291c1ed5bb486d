"""Schedules: create, change and delete them (owners only); fire the due ones; release delayed runs.

Every consumer ticks (agent/scheduler.py) and calls `schedules_fire_due` and
`job_groups_release_due`; any number of them on any number of hosts may do so at once. A slot is
claimed by a conditional update of the schedule's `next_run_at`, and its run is created in the
same transaction under the database's unique constraints on (schedule, scheduled_for) and on
(workspace, scheduled_for) of scheduled runs: whatever the timing, one run per slot and per
workspace. A slot that cannot run (no prompts, no providers) is recorded on the schedule and
consumed, so it is not retried every tick.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from agent.cron import CronInvalid, cron_validate, slot_latest, slot_next, timezone_validate
from agent.models import SCHEDULED_RUN_LATE_AFTER, JobGroup, Schedule
from agent.services.submit import job_group_submit, job_groups_enqueue
from oneglanse.exceptions import DomainError, InvalidInput
from workspaces.members import membership_require_owner
from workspaces.models import Workspace

logger = logging.getLogger(__name__)

SCHEDULES_PER_WORKSPACE_MAX = 20
# Due schedules are read in batches of this many per pass; a tick makes passes until none is due.
FIRE_BATCH = 200
# Slots are claimed this many to a transaction (each in its own savepoint): on SQLite every
# transaction waits for the one write lock, which the workers want too, so a thousand schedules
# due at once cost tens of lock waits, not a thousand.
FIRE_CHUNK = 50
RELEASE_BATCH = 200


def schedule_owner_check(*, workspace: Workspace, user) -> None:
    """Only a workspace's owners change its schedules; members see them (NotOwner, 403).

    Superusers pass too: the admin lets them change any workspace's schedules.
    """
    if user is not None and user.is_superuser:
        return
    membership_require_owner(user=user, workspace=workspace)


def _validated(*, cron: str, timezone_name: str, priority: str) -> tuple[str, str, str]:
    try:
        cron = cron_validate(cron)
    except CronInvalid as exc:
        raise InvalidInput(str(exc), field="cron") from None
    try:
        timezone_validate(timezone_name)
    except CronInvalid as exc:
        raise InvalidInput(str(exc), field="timezone") from None
    if priority not in JobGroup.Priority.values:
        raise InvalidInput(f"Priority is one of {', '.join(JobGroup.Priority.values)}.", field="priority")
    return cron, timezone_name.strip(), priority


def schedule_create(
    *, workspace: Workspace, user, cron: str, timezone: str = "UTC", priority: str = "low", is_active: bool = True
) -> Schedule:
    schedule_owner_check(workspace=workspace, user=user)
    cron, zone, priority = _validated(cron=cron, timezone_name=timezone, priority=priority)
    if Schedule.objects.filter(workspace=workspace).count() >= SCHEDULES_PER_WORKSPACE_MAX:
        raise InvalidInput(f"A workspace has at most {SCHEDULES_PER_WORKSPACE_MAX} schedules.")
    return Schedule.objects.create(
        workspace=workspace, cron=cron, timezone=zone, priority=priority, is_active=is_active, created_by=user,
        next_run_at=slot_next(cron, zone, after=_now()),
    )


def schedule_update(*, schedule: Schedule, user, **changes) -> Schedule:
    """Change cron, timezone, priority or is_active; the next run is computed again from now."""
    schedule_owner_check(workspace=schedule.workspace, user=user)
    cron, zone, priority = _validated(
        cron=changes.get("cron", schedule.cron), timezone_name=changes.get("timezone", schedule.timezone),
        priority=changes.get("priority", schedule.priority),
    )
    schedule.cron, schedule.timezone, schedule.priority = cron, zone, priority
    if "is_active" in changes:
        schedule.is_active = bool(changes["is_active"])
    # Resuming never fires the slots missed while paused: the next slot counts from now.
    schedule.next_run_at = slot_next(cron, zone, after=_now())
    schedule.save(update_fields=["cron", "timezone", "priority", "is_active", "next_run_at"])
    return schedule


def schedule_delete(*, schedule: Schedule, user) -> None:
    """The schedule goes; the runs it started stay, as the audit trail."""
    schedule_owner_check(workspace=schedule.workspace, user=user)
    schedule.delete()


@dataclass
class FireReport:
    started: int = 0
    skipped: int = 0
    taken_elsewhere: int = 0
    late: int = 0
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.started or self.skipped or self.errors)


def schedules_fire_due(*, now: datetime | None = None) -> FireReport:
    """Start a run for every active schedule whose next slot has come (one pass of a tick)."""
    now = now or _now()
    report = FireReport()
    seen: set[int] = set()
    while True:
        due = list(
            Schedule.objects.filter(is_active=True, next_run_at__lte=now).exclude(id__in=seen)
            .select_related("workspace", "created_by").order_by("next_run_at")[:FIRE_BATCH]
        )
        if not due:
            return report
        seen.update(schedule.id for schedule in due)
        chunks = [due[n:n + FIRE_CHUNK] for n in range(0, len(due), FIRE_CHUNK)]
        # Consumers on other hosts walk the same list: starting at different chunks, they rarely
        # reach for the same schedules at once; within a chunk rows are claimed in id order, so two
        # transactions never wait on each other's rows in a cycle (PostgreSQL).
        start = random.randrange(len(chunks))
        for chunk in chunks[start:] + chunks[:start]:
            started: list[JobGroup] = []
            try:
                with transaction.atomic():
                    for schedule in sorted(chunk, key=lambda s: str(s.id)):
                        _fire_one(schedule=schedule, now=now, report=report, started=started)
            except Exception as exc:  # the chunk rolled back; its slots are due again at the next tick
                logger.exception("a chunk of %d schedules could not fire", len(chunk))
                report.errors.append(f"{exc.__class__.__name__}: {exc}")
                continue
            if started:
                try:
                    job_groups_enqueue(groups=started)
                except DomainError as exc:  # the runs are marked failed with the reason
                    report.errors.append(exc.detail)


def _fire_one(*, schedule: Schedule, now: datetime, report: FireReport, started: list[JobGroup]) -> None:
    try:
        with transaction.atomic():
            outcome = schedule_fire(schedule=schedule, now=now, started=started)
    except Exception as exc:  # one schedule's trouble never stops the others (its savepoint rolled back)
        logger.exception("schedule %s could not fire", schedule.id)
        report.errors.append(f"{schedule.id}: {exc.__class__.__name__}: {exc}")
        return
    if outcome == "started":
        report.started += 1
    elif outcome == "late":
        report.started += 1
        report.late += 1
    elif outcome == "skipped":
        report.skipped += 1
    else:
        report.taken_elsewhere += 1


def schedule_fire(*, schedule: Schedule, now: datetime, started: list[JobGroup] | None = None) -> str:
    """Claim the schedule's latest due slot and start its run: "started", "late", "skipped" or "taken".

    Call it inside a transaction. With a `started` list, the new run is appended to it and the
    caller puts it on the queues after its commit (`job_groups_enqueue`); without, at commit.
    """
    slot = max(schedule.next_run_at, slot_latest(schedule.cron, schedule.timezone, at_or_before=now))
    late = now - slot > SCHEDULED_RUN_LATE_AFTER
    following = slot_next(schedule.cron, schedule.timezone, after=max(now, slot))
    submitted, reason = None, ""
    with transaction.atomic():
        claimed = Schedule.objects.filter(
            id=schedule.id, is_active=True, next_run_at=schedule.next_run_at
        ).update(next_run_at=following)
        if not claimed:
            return "taken"  # another consumer claimed this slot, or the schedule changed meanwhile
        try:
            with transaction.atomic():
                submitted = job_group_submit(
                    workspace=schedule.workspace, user=schedule.created_by, priority=schedule.priority,
                    trigger=JobGroup.Trigger.SCHEDULE, schedule=schedule, scheduled_for=slot, late=late,
                    enqueue=started is None,
                )
        except IntegrityError:
            other = JobGroup.objects.filter(workspace_id=schedule.workspace_id, scheduled_for=slot).first()
            reason = "another schedule of this workspace already started a run for this time"
            if other is not None and other.schedule_id == schedule.id:
                reason = "this time already ran"
        except DomainError as exc:
            reason = exc.detail
        if submitted is not None and submitted.job_group is None:
            reason = "the workspace has no active prompts"
        if reason:
            Schedule.objects.filter(id=schedule.id).update(last_skip_reason=reason[:500], last_skip_at=slot)
        else:
            Schedule.objects.filter(id=schedule.id).update(last_run_at=slot, last_skip_reason="", last_skip_at=None)
            if started is not None:
                started.append(submitted.job_group)
    if reason:
        logger.warning("schedule %s (%s) did not run at %s: %s", schedule.id, schedule.workspace.name, slot, reason)
        return "skipped"
    logger.info("schedule %s started run %s for %s%s", schedule.id, submitted.job_group.id, slot, " (late)" if late else "")
    return "late" if late else "started"


def job_groups_release_due(*, now: datetime | None = None) -> int:
    """Put delayed runs whose time has come on their queues; returns how many this call released."""
    now = now or _now()
    released = 0
    while True:
        due = list(
            JobGroup.objects.filter(status=JobGroup.Status.SCHEDULED, run_at__lte=now)
            .order_by("run_at").values_list("id", flat=True)[:RELEASE_BATCH]
        )
        if not due:
            return released
        # Whoever changes a run's status releases it; a crash right after leaves queued items
        # that the recovery sweep puts on the queues (and it rebuilds the progress object).
        mine = [
            group_id for group_id in due
            if JobGroup.objects.filter(id=group_id, status=JobGroup.Status.SCHEDULED).update(status=JobGroup.Status.QUEUED)
        ]
        if not mine:
            continue
        try:
            job_groups_enqueue(groups=list(JobGroup.objects.filter(id__in=mine)))
        except DomainError as exc:  # the runs are marked failed with the reason
            logger.error("%d delayed runs could not be queued: %s", len(mine), exc)
        released += len(mine)


def _now() -> datetime:
    return timezone.now()
