"""Who belongs to a workspace and in which role: add by username, change a role, remove.

Only owners change members; a workspace always keeps at least one owner (the last one can be
neither demoted nor removed: 409). The pages call these; the members API calls the same.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from oneglanse.exceptions import Conflict, DomainError, InvalidInput, NotFound
from workspaces.models import Membership, Workspace


class OwnerRequired(DomainError):
    """The caller can see the workspace but is not an owner of it."""

    status_code = 403


def _owner_check(*, workspace: Workspace, by) -> None:
    if not Membership.objects.filter(workspace=workspace, user=by, role=Membership.Role.OWNER).exists():
        raise OwnerRequired("Only an owner of this workspace can change its members.")


def _role_check(role: str) -> str:
    if role not in Membership.Role.values:
        raise InvalidInput(f"Unknown role {role!r}; one of: {', '.join(Membership.Role.values)}.", field="role")
    return role


def _membership_locked(*, workspace: Workspace, username: str) -> Membership:
    membership = (
        Membership.objects.select_for_update().select_related("user")
        .filter(workspace=workspace, user__username=username).first()
    )
    if membership is None:
        raise NotFound(f"{username} is not a member of this workspace.")
    return membership


def _last_owner_guard(*, workspace: Workspace, membership: Membership) -> None:
    if membership.role != Membership.Role.OWNER:
        return
    # Lock every owner row, so two owners demoting each other at once cannot both succeed.
    owners = list(
        Membership.objects.select_for_update()
        .filter(workspace=workspace, role=Membership.Role.OWNER)
        .values_list("id", flat=True)
    )
    if owners == [membership.id]:
        raise Conflict(f"{membership.user.get_username()} is the last owner: make someone else an owner first.")


def member_add(*, workspace: Workspace, by, username: str, role: str = Membership.Role.MEMBER) -> Membership:
    _owner_check(workspace=workspace, by=by)
    role = _role_check(role)
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise InvalidInput(f"No user is called {username!r}; they need an account first.", field="username")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, workspace=workspace, defaults={"role": role})
    if not created:
        raise Conflict(f"{username} is already a {membership.role} of this workspace.")
    return membership


def member_role_set(*, workspace: Workspace, by, username: str, role: str) -> Membership:
    _owner_check(workspace=workspace, by=by)
    role = _role_check(role)
    with transaction.atomic():
        membership = _membership_locked(workspace=workspace, username=username)
        if role != Membership.Role.OWNER:
            _last_owner_guard(workspace=workspace, membership=membership)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def member_remove(*, workspace: Workspace, by, username: str) -> None:
    _owner_check(workspace=workspace, by=by)
    with transaction.atomic():
        membership = _membership_locked(workspace=workspace, username=username)
        _last_owner_guard(workspace=workspace, membership=membership)
        membership.delete()
