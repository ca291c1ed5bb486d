"""Reads of job groups and their items, always scoped to the caller's workspaces."""
from __future__ import annotations

import uuid

from django.db.models import QuerySet

from agent.exceptions import InvalidInput, NotFound
from agent.models import JobGroup, JobItem
from agent.providers.registry import PROVIDER_IDS


def job_groups_of_user(*, user) -> QuerySet[JobGroup]:
    return JobGroup.objects.filter(workspace__memberships__user=user)


def job_group_get_for_user(*, user, group_id: str) -> JobGroup:
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
