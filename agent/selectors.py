"""Reads of job groups and their items, always scoped to the caller's workspaces."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value, When

from agent.models import JobGroup, JobItem, Schedule
from oneglanse.exceptions import InvalidInput, NotFound
from oneglanse.provider_ids import PROVIDER_IDS

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from workspaces.models import Workspace


def schedules_of_workspace(*, workspace: Workspace) -> QuerySet[Schedule]:
    return Schedule.objects.filter(workspace=workspace).select_related("created_by").order_by("created_at")


def schedule_get_for_user(*, user: User, schedule_id: str) -> Schedule:
    """The schedule if the user is a member of its workspace; otherwise, or for a malformed id, 404."""
    try:
        uuid.UUID(str(schedule_id))
    except ValueError:
        raise NotFound("Schedule not found.") from None
    schedule = (
        Schedule.objects.filter(id=schedule_id, workspace__memberships__user=user)
        .select_related("workspace", "created_by").first()
    )
    if schedule is None:
        raise NotFound("Schedule not found.")
    return schedule


def job_groups_of_user(*, user: User) -> QuerySet[JobGroup]:
    return JobGroup.objects.filter(workspace__memberships__user=user)


def job_groups_of_workspace(*, workspace: Workspace) -> QuerySet[JobGroup]:
    """A workspace's runs, newest first, with who triggered them."""
    return JobGroup.objects.filter(workspace=workspace).select_related("triggered_by").order_by("-created_at")


def job_group_get_for_user(*, user: User, group_id: str) -> JobGroup:
    """The group if the user belongs to its workspace; unknown, malformed or foreign ids are NotFound."""
    try:
        uuid.UUID(str(group_id))
    except ValueError:
        raise NotFound("Run not found.") from None
    group = job_groups_of_user(user=user).filter(id=group_id).select_related("workspace").first()
    if group is None:
        raise NotFound("Run not found.")
    return group


def job_items_of_group(*, group: JobGroup, provider: str | None = None, status: str | None = None) -> QuerySet[JobItem]:
    items = JobItem.objects.filter(group=group)
    if provider:
        if provider not in PROVIDER_IDS:
            raise InvalidInput(f"Unknown provider {provider!r}; known: {', '.join(PROVIDER_IDS)}.", field="provider")
        items = items.filter(provider=provider)
    if status:
        if status not in JobItem.Status.values:
            raise InvalidInput(f"Unknown status {status!r}; one of: {', '.join(JobItem.Status.values)}.", field="status")
        items = items.filter(status=status)
    return items.order_by("prompt_id", "provider", "id")


def job_groups_with_finished_count(groups: QuerySet[JobGroup]) -> QuerySet[JobGroup]:
    """Annotate `finished_items` (ok + failed + cancelled) on unfinished groups, in the same query.

    Finished groups carry their final counts in `progress`, so the correlated count only runs
    for the few rows still queued or running; a list of N groups costs no extra query per row.
    """
    finished = (
        JobItem.objects.filter(group=OuterRef("pk"), status__in=JobItem.FINISHED)
        .order_by()
        .values("group")
        .annotate(n=Count("id"))
        .values("n")
    )
    return groups.annotate(
        finished_items=Case(
            When(status__in=JobGroup.UNFINISHED, then=Subquery(finished, output_field=IntegerField())),
            default=Value(None),
            output_field=IntegerField(),
        )
    )


def job_group_finished_count(group: JobGroup) -> int:
    """Items finished so far, from the final mirror or the `finished_items` annotation."""
    if group.status not in JobGroup.UNFINISHED and group.progress:
        stats = group.progress.get("stats", {})
        return stats.get("actualResponses", 0) + stats.get("failedResponses", 0) + stats.get("cancelledResponses", 0)
    return getattr(group, "finished_items", None) or 0


def job_item_counts_by_provider(group: JobGroup) -> dict[str, dict[str, int]]:
    """{provider: {status: n, ..., "all": n}} for every provider of the group, in one query."""
    counts: dict[str, dict[str, int]] = {
        provider: dict.fromkeys([*JobItem.Status.values, "all"], 0) for provider in group.providers
    }
    for row in JobItem.objects.filter(group=group).order_by().values("provider", "status").annotate(n=Count("id")):
        bucket = counts.setdefault(row["provider"], dict.fromkeys([*JobItem.Status.values, "all"], 0))
        bucket[row["status"]] = row["n"]
        bucket["all"] += row["n"]
    return counts


def job_item_last_error(*, group: JobGroup, provider: str) -> str:
    """The error of a provider's most recently failed item in the group, or ""."""
    return (
        JobItem.objects.filter(group=group, provider=provider, status=JobItem.Status.FAILED)
        .order_by("-finished_at").values_list("error", flat=True).first()
    ) or ""


@contextmanager
def read_snapshot() -> Iterator[None]:
    """Reads inside see one moment of the database, so a page's counters and its answer cards agree.

    PostgreSQL: a REPEATABLE READ, READ ONLY transaction (one snapshot for every statement, no locks).
    SQLite: a transaction, whose reads all come from one WAL snapshot.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def job_item_error_groups(*, group: JobGroup, limit: int = 20) -> list[dict]:
    """Failed items grouped by (provider, error), most frequent first: one line instead of 25 copies."""
    return list(
        JobItem.objects.filter(group=group, status=JobItem.Status.FAILED)
        .order_by().values("provider", "error").annotate(n=Count("id")).order_by("-n", "provider")[:limit]
    )


def job_group_reruns(*, group: JobGroup) -> list[JobGroup]:
    return list(JobGroup.objects.filter(rerun_of=group).order_by("created_at"))


def job_group_failures_answered_later(*, group: JobGroup) -> int:
    """How many of the run's failed or cancelled items a re-run of it has since answered."""
    answered = JobItem.objects.filter(
        group__rerun_of=group, status=JobItem.Status.OK, provider=OuterRef("provider"), prompt=OuterRef("prompt"),
    )
    return (
        JobItem.objects.filter(group=group, status__in=[JobItem.Status.FAILED, JobItem.Status.CANCELLED])
        .filter(Exists(answered)).count()
    )


def job_group_status_counts(*, group_ids: list) -> dict:
    """{group id: {status: n}} for a few unfinished groups of a list, in one query."""
    counts: dict = {}
    if not group_ids:
        return counts
    rows = JobItem.objects.filter(group_id__in=group_ids).order_by().values("group_id", "status").annotate(n=Count("id"))
    for row in rows:
        counts.setdefault(row["group_id"], {})[row["status"]] = row["n"]
    return counts
