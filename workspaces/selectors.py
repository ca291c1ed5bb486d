"""Reads of workspaces, always scoped to the caller's memberships."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db.models import Count, Q, QuerySet

from oneglanse.exceptions import NotFound
from workspaces.models import Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def workspaces_of_user(*, user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user)


def workspace_get_for_user(*, user: User, workspace_id: str) -> Workspace:
    """The workspace if the user is a member; otherwise, or for a malformed id, NotFound (404)."""
    try:
        uuid.UUID(str(workspace_id))
    except ValueError:
        raise NotFound("Workspace not found.") from None
    workspace = workspaces_of_user(user=user).filter(id=workspace_id).first()
    if workspace is None:
        raise NotFound("Workspace not found.")
    return workspace


def workspaces_with_active_prompt_count(workspaces: QuerySet[Workspace]) -> QuerySet[Workspace]:
    """Annotate `active_prompts` on each workspace, in the same query."""
    return workspaces.annotate(active_prompts=Count("prompts", filter=Q(prompts__is_active=True)))
