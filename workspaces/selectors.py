"""Reads of workspaces, always scoped to the caller's memberships."""
from __future__ import annotations

import uuid

from django.db.models import QuerySet

from agent.exceptions import NotFound
from workspaces.models import Workspace


def workspaces_of_user(*, user) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user)


def workspace_get_for_user(*, user, workspace_id: str) -> Workspace:
    """The workspace if the user is a member; otherwise, or for a malformed id, NotFound (404)."""
    try:
        uuid.UUID(str(workspace_id))
    except ValueError:
        raise NotFound("Workspace not found.") from None
    workspace = workspaces_of_user(user=user).filter(id=workspace_id).first()
    if workspace is None:
        raise NotFound("Workspace not found.")
    return workspace
