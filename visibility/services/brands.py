"""Services that write brands; every change moves the workspace's analysis revision (re-analysis pending)."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator
from django.db import transaction

from oneglanse.exceptions import InvalidInput
from visibility.detection import domain_normalise
from visibility.models import BRAND_NAME_MAX_LENGTH, MAX_BRANDS_PER_WORKSPACE, AnalysisState, Brand
from workspaces.models import Workspace

MAX_ALIASES = 20
MAX_DOMAINS = 20
_host_name = DomainNameValidator(accept_idna=True)


@dataclass(frozen=True)
class BrandFields:
    name: str
    aliases: list[str]
    domains: list[str]


def _text_validate(value, *, field: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} is empty.", field=field)
    value = value.strip()
    if len(value) > BRAND_NAME_MAX_LENGTH:
        raise InvalidInput(f"{what} is longer than {BRAND_NAME_MAX_LENGTH} characters.", field=field)
    return value


def _aliases_validate(aliases: list) -> list[str]:
    if len(aliases) > MAX_ALIASES:
        raise InvalidInput(f"A brand can have at most {MAX_ALIASES} aliases.", field="aliases")
    cleaned = [
        _text_validate(alias, field="aliases", what=f"Alias {number}") for number, alias in enumerate(aliases, 1)
    ]
    return list(dict.fromkeys(cleaned))


def _domains_validate(domains: list) -> list[str]:
    if len(domains) > MAX_DOMAINS:
        raise InvalidInput(f"A brand can have at most {MAX_DOMAINS} domains.", field="domains")
    cleaned = []
    for number, raw in enumerate(domains, 1):
        _text_validate(raw, field="domains", what=f"Domain {number}")
        # Stored as sources are compared: lower case, no `www.` (a source's www. is dropped too).
        domain = domain_normalise(raw)
        try:
            _host_name(domain)
            if "." not in domain:
                raise ValidationError("no dot")
        except ValidationError:
            raise InvalidInput(
                f"Domain {number} ({raw.strip()!r}) is not a host name like example.com (no scheme, path or port).",
                field="domains",
            ) from None
        cleaned.append(domain)
    return list(dict.fromkeys(cleaned))


def _state_lock(workspace_id) -> AnalysisState:
    """The workspace's analysis state row, locked until the transaction ends (created on first use)."""
    AnalysisState.objects.get_or_create(workspace_id=workspace_id)
    return AnalysisState.objects.select_for_update().get(workspace_id=workspace_id)


def _revision_bump(state: AnalysisState) -> None:
    """Mark the workspace's stored analyses stale: the visibility sweep in the consumers re-analyses
    them within seconds (re-analysing 100,000 answers inside the request would take half a minute)."""
    from visibility.services.matchers import cached_matcher_forget

    state.revision += 1
    state.save(update_fields=["revision"])
    # This process analyses with the new brands at once; the others within VISIBILITY_MATCHER_TTL.
    transaction.on_commit(lambda: cached_matcher_forget(workspace_id=state.workspace_id))


def _own_check(*, workspace_id, is_own: bool, exclude_id: int | None = None) -> None:
    if is_own and Brand.objects.filter(workspace_id=workspace_id, is_own=True).exclude(id=exclude_id).exists():
        raise InvalidInput(
            "This workspace already has its own brand; mark that one as a competitor first.", field="is_own"
        )


def brand_create(
    *,
    workspace: Workspace,
    name: str,
    aliases: list | None = None,
    domains: list | None = None,
    is_own: bool = False,
    match_case: bool = False,
) -> Brand:
    name = _text_validate(name, field="name", what="The name")
    aliases = _aliases_validate(aliases or [])
    domains = _domains_validate(domains or [])
    with transaction.atomic():
        # The locked state row serialises brand writes of one workspace, so two concurrent
        # creations cannot both see 49 brands and make 51.
        state = _state_lock(workspace.id)
        if Brand.objects.filter(workspace=workspace).count() >= MAX_BRANDS_PER_WORKSPACE:
            raise InvalidInput(f"A workspace can track at most {MAX_BRANDS_PER_WORKSPACE} brands.", field="name")
        _own_check(workspace_id=workspace.id, is_own=is_own)
        brand = Brand.objects.create(
            workspace=workspace, name=name, aliases=aliases, domains=domains, is_own=is_own, match_case=match_case
        )
        _revision_bump(state)
    return brand


def brand_update(
    *,
    brand: Brand,
    name: str | None = None,
    aliases: list | None = None,
    domains: list | None = None,
    is_own: bool | None = None,
    match_case: bool | None = None,
) -> Brand:
    changes: dict = {}
    if name is not None:
        changes["name"] = _text_validate(name, field="name", what="The name")
    if aliases is not None:
        changes["aliases"] = _aliases_validate(aliases)
    if domains is not None:
        changes["domains"] = _domains_validate(domains)
    if is_own is not None:
        changes["is_own"] = is_own
    if match_case is not None:
        changes["match_case"] = match_case
    with transaction.atomic():
        state = _state_lock(brand.workspace_id)
        if changes.get("is_own"):
            _own_check(workspace_id=brand.workspace_id, is_own=True, exclude_id=brand.id)
        for field, value in changes.items():
            setattr(brand, field, value)
        if changes:
            brand.save(update_fields=list(changes))
            _revision_bump(state)
    return brand


def brand_delete(*, brand: Brand) -> None:
    with transaction.atomic():
        state = _state_lock(brand.workspace_id)
        brand.delete()  # its mentions and per-run figures go with it
        _revision_bump(state)
