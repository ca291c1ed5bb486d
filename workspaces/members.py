"""Roles and members of a workspace: owners change the workspace, its schedules and its members.

`membership_require_owner` is the one check every owner-only operation asks (the workspace API,
the members API, the admin, schedules). A workspace always keeps at least one owner.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet

from oneglanse.exceptions import Conflict, DomainError, InvalidInput, NotFound
from workspaces.models import Membership, Workspace

ROLES = tuple(Membership.Role.values)


class NotOwner(DomainError):
    """The caller is a member (they can see the workspace, so 403 rather than 404)."""

    status_code = 403


def membership_role(*, user, workspace: Workspace) -> str | None:
    """The user's role in the workspace, or None when they are not a member."""
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, workspace=workspace).values_list("role", flat=True).first()


def membership_is_owner(*, user, workspace: Workspace) -> bool:
    return membership_role(user=user, workspace=workspace) == Membership.Role.OWNER


def membership_require_owner(*, user, workspace: Workspace) -> None:
    """Raise NotOwner (403) unless the user owns the workspace; call after the 404 check of membership."""
    if not membership_is_owner(user=user, workspace=workspace):
        raise NotOwner("Only an owner of this workspace can do this.")


def memberships_of_workspace(*, workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__username")


def _role_validate(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}; roles are: {', '.join(ROLES)}.", field="role")
    return role


def membership_get(*, workspace: Workspace, username: str) -> Membership:
    membership = Membership.objects.filter(workspace=workspace, user__username=username).select_related("user").first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this workspace.")
    return membership


def _lock_workspace(workspace: Workspace) -> None:
    # Serialises concurrent changes to one workspace's members (PostgreSQL row lock; SQLite's
    # IMMEDIATE transactions already serialise writers), so two owners demoting each other at
    # once cannot leave the workspace with none.
    Workspace.objects.select_for_update().filter(pk=workspace.pk).first()


def _owners_other_than(membership: Membership) -> int:
    return Membership.objects.filter(workspace_id=membership.workspace_id, role=Membership.Role.OWNER).exclude(
        pk=membership.pk
    ).count()


def membership_add(*, by, workspace: Workspace, username: str, role: str = Membership.Role.MEMBER) -> Membership:
    membership_require_owner(user=by, workspace=workspace)
    role = _role_validate(role)
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise InvalidInput(f"No user named {username!r}.", field="username")
    with transaction.atomic():
        _lock_workspace(workspace)
        if Membership.objects.filter(workspace=workspace, user=user).exists():
            raise Conflict(f"{username!r} is already a member of this workspace.")
        return Membership.objects.create(workspace=workspace, user=user, role=role)


def membership_change_role(*, by, workspace: Workspace, username: str, role: str) -> Membership:
    membership_require_owner(user=by, workspace=workspace)
    role = _role_validate(role)
    with transaction.atomic():
        _lock_workspace(workspace)
        membership = membership_get(workspace=workspace, username=username)
        if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER and not _owners_other_than(membership):
            raise Conflict("This is the workspace's last owner; make someone else an owner first.")
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def membership_remove(*, by, workspace: Workspace, username: str) -> None:
    membership_require_owner(user=by, workspace=workspace)
    with transaction.atomic():
        _lock_workspace(workspace)
        membership = membership_get(workspace=workspace, username=username)
        if membership.role == Membership.Role.OWNER and not _owners_other_than(membership):
            raise Conflict("This is the workspace's last owner; make someone else an owner first.")
        membership.delete()
