"""Reads of job groups and their items, always scoped to the caller's workspaces."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db.models import Case, Count, IntegerField, OuterRef, QuerySet, Subquery, Value, When

from agent.models import JobGroup, JobItem
from oneglanse.exceptions import InvalidInput, NotFound
from oneglanse.provider_ids import PROVIDER_IDS

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from workspaces.models import Workspace


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
        raise NotFound("Job group not found.") from None
    group = job_groups_of_user(user=user).filter(id=group_id).select_related("workspace").first()
    if group is None:
        raise NotFound("Job group not found.")
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
