"""Services that write workspaces and memberships."""
from __future__ import annotations

from django.db import transaction

from oneglanse.exceptions import InvalidInput
from oneglanse.provider_ids import PROVIDER_IDS, unknown_provider_ids
from workspaces.models import Membership, Workspace

WORKSPACE_NAME_MAX_LENGTH = 200


def _providers_validate(enabled_providers: list[str]) -> list[str]:
    if not enabled_providers:
        raise InvalidInput(f"Enable at least one provider: {', '.join(PROVIDER_IDS)}.", field="enabled_providers")
    unknown = unknown_provider_ids(enabled_providers)
    if unknown:
        raise InvalidInput(
            f"Unknown providers: {', '.join(unknown)}. Known providers: {', '.join(PROVIDER_IDS)}.",
            field="enabled_providers",
        )
    return list(dict.fromkeys(enabled_providers))  # keep order, drop repeats


def workspace_create(*, user, name: str, enabled_providers: list[str]) -> Workspace:
    enabled_providers = _providers_validate(enabled_providers)
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, enabled_providers=enabled_providers)
        Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    return workspace


def workspace_update(*, workspace: Workspace, name: str | None = None, enabled_providers: list[str] | None = None) -> Workspace:
    if name is not None:
        workspace.name = name
    if enabled_providers is not None:
        workspace.enabled_providers = _providers_validate(enabled_providers)
    workspace.save(update_fields=["name", "enabled_providers"])
    return workspace
