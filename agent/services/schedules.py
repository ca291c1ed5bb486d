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
from oneglanse.exceptions import DomainError, Forbidden, InvalidInput
from workspaces.models import Membership, Workspace

logger = logging.getLogger(__name__)

SCHEDULES_PER_WORKSPACE_MAX = 20
# Due schedules are read in batches of this many per pass; a tick makes passes until none is due.
FIRE_BATCH = 200
RELEASE_BATCH = 200


def schedule_owner_check(*, workspace: Workspace, user) -> None:
    """Only a workspace's owners change its schedules; members see them (403, not 404)."""
    if user is not None and user.is_superuser:
        return
    if user is None or not Membership.objects.filter(
        workspace=workspace, user=user, role=Membership.Role.OWNER
    ).exists():
        raise Forbidden("Only an owner of this workspace changes its schedules.")


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
        # Consumers on other hosts walk the same list: starting at different places, they
        # rarely reach for the same schedule at once.
        random.shuffle(due)
        for schedule in due:
            seen.add(schedule.id)
            try:
                outcome = schedule_fire(schedule=schedule, now=now)
            except Exception as exc:  # one schedule's trouble never stops the others
                logger.exception("schedule %s could not fire", schedule.id)
                report.errors.append(f"{schedule.id}: {exc.__class__.__name__}: {exc}")
                continue
            if outcome == "started":
                report.started += 1
            elif outcome == "late":
                report.started += 1
                report.late += 1
            elif outcome == "skipped":
                report.skipped += 1
            else:
                report.taken_elsewhere += 1


def schedule_fire(*, schedule: Schedule, now: datetime) -> str:
    """Claim the schedule's latest due slot and start its run: "started", "late", "skipped" or "taken"."""
    from agent.services.submit import job_group_submit

    slot = max(schedule.next_run_at, slot_latest(schedule.cron, schedule.timezone, at_or_before=now))
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
                    trigger=JobGroup.Trigger.SCHEDULE, schedule=schedule, scheduled_for=slot,
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
            if now - slot > SCHEDULED_RUN_LATE_AFTER:
                submitted.job_group.late = True
                JobGroup.objects.filter(id=submitted.job_group.id).update(late=True)
    if reason:
        logger.warning("schedule %s (%s) did not run at %s: %s", schedule.id, schedule.workspace.name, slot, reason)
        return "skipped"
    late = submitted.job_group.late
    logger.info("schedule %s started run %s for %s%s", schedule.id, submitted.job_group.id, slot, " (late)" if late else "")
    return "late" if late else "started"


def job_groups_release_due(*, now: datetime | None = None) -> int:
    """Put delayed runs whose time has come on their queues; returns how many this call released."""
    from agent.services.submit import job_group_enqueue

    now = now or _now()
    released = 0
    while True:
        due = list(
            JobGroup.objects.filter(status=JobGroup.Status.SCHEDULED, run_at__lte=now)
            .order_by("run_at").values_list("id", flat=True)[:RELEASE_BATCH]
        )
        if not due:
            return released
        for group_id in due:
            # Whoever changes the status releases the run; a crash right after it leaves queued
            # items that the recovery sweep puts on the queues.
            if not JobGroup.objects.filter(id=group_id, status=JobGroup.Status.SCHEDULED).update(
                status=JobGroup.Status.QUEUED
            ):
                continue
            try:
                job_group_enqueue(group=JobGroup.objects.get(id=group_id))
            except DomainError as exc:
                logger.error("delayed run %s could not be queued: %s", group_id, exc)
                continue
            released += 1


def _now() -> datetime:
    return timezone.now()
