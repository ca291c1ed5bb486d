"""Services that write workspaces and memberships."""
from __future__ import annotations

from django.db import transaction

from oneglanse.exceptions import InvalidInput
from oneglanse.provider_ids import PROVIDER_IDS, unknown_provider_ids
from workspaces.models import MAX_SAMPLES_PER_RUN, MIN_SAMPLES_PER_RUN, Membership, Workspace

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


def workspace_create(*, user, name: str, enabled_providers: list[str], samples_per_run: int = 1) -> Workspace:
    enabled_providers = _providers_validate(enabled_providers)
    with transaction.atomic():
        workspace = Workspace.objects.create(
            name=name, enabled_providers=enabled_providers, samples_per_run=_samples_validate(samples_per_run)
        )
        Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    return workspace


def _samples_validate(samples_per_run: int) -> int:
    if not MIN_SAMPLES_PER_RUN <= samples_per_run <= MAX_SAMPLES_PER_RUN:
        raise InvalidInput(
            f"Samples per run must be {MIN_SAMPLES_PER_RUN} to {MAX_SAMPLES_PER_RUN}.", field="samples_per_run"
        )
    return samples_per_run


def workspace_update(
    *, workspace: Workspace, name: str | None = None, enabled_providers: list[str] | None = None,
    samples_per_run: int | None = None,
) -> Workspace:
    if name is not None:
        workspace.name = name
    if enabled_providers is not None:
        workspace.enabled_providers = _providers_validate(enabled_providers)
    if samples_per_run is not None:
        workspace.samples_per_run = _samples_validate(samples_per_run)
    workspace.save(update_fields=["name", "enabled_providers", "samples_per_run"])
    return workspace
