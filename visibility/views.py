"""Visibility pages: a workspace's dashboard, the answers behind one prompt × provider cell with the
brand names marked, and the brand and samples forms of the workspace page.

Same habits as the other pages: selectors scope every id to the caller (anything else is 404), the
same services as the API do the writing, a domain error becomes a message on the page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from agent.models import JobItem
from agent.selectors import job_group_get_for_user
from oneglanse.exceptions import DomainError
from oneglanse.pages import page_scoped
from oneglanse.provider_ids import PROVIDER_IDS, provider_label
from visibility.models import Brand
from visibility.pages import (
    DEFAULT_PERIOD,
    PERIODS,
    dashboard_data,
    highlighted,
    latest_finished_run,
    period_start,
    prompt_provider_table,
)
from visibility.selectors import brand_get_for_user, brands_of_workspace, workspace_reanalysis_pending
from visibility.services.brands import brand_create, brand_delete, brand_update
from workspaces.models import Membership
from workspaces.selectors import workspace_get_for_user
from workspaces.services import workspace_update

ANSWERS_SHOWN = 50


def _chosen_brand(brands: list[Brand], raw: str | None) -> Brand | None:
    if raw and raw.isdigit():
        for brand in brands:
            if brand.id == int(raw):
                return brand
    return next((b for b in brands if b.is_own), brands[0] if brands else None)


@page_scoped
def dashboard_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    period = request.GET.get("period") if request.GET.get("period") in PERIODS else DEFAULT_PERIOD
    brands = list(brands_of_workspace(workspace=workspace))
    brand = _chosen_brand(brands, request.GET.get("brand"))
    data = dashboard_data(workspace=workspace, since=period_start(period))
    data["brand"] = brand.id if brand else None
    latest = latest_finished_run(workspace=workspace)
    summary = next((s for s in data["summaries"] if s["provider"] == "all"), None)
    return render(
        request,
        "visibility/dashboard.html",
        {
            "workspace": workspace,
            "brands": brands,
            "brand": brand,
            "period": period,
            "periods": [("30", "Last 30 days"), ("90", "Last 90 days"), ("365", "Last year"), ("all", "All time")],
            "data": data,
            "summary": summary,
            "brand_summary": next((b for b in summary["brands"] if brand and b["id"] == brand.id), None)
            if summary
            else None,
            "latest": latest,
            "table": prompt_provider_table(group=latest, brand=brand) if latest else None,
            "pending": workspace_reanalysis_pending(workspace_id=workspace.id),
        },
    )


@page_scoped
def cell_answers_page(request: HttpRequest, group_id: str) -> HttpResponse:
    """The answers of one run for one prompt and provider, every tracked brand marked in the text."""
    group = job_group_get_for_user(user=request.user, group_id=group_id)
    provider = request.GET.get("provider", "")
    prompt = request.GET.get("prompt", "")
    items = JobItem.objects.filter(group=group).order_by("prompt_id", "provider", "sample")
    if provider in PROVIDER_IDS:
        items = items.filter(provider=provider)
    if prompt.isdigit():
        items = items.filter(prompt_id=int(prompt))
    brands = list(brands_of_workspace(workspace=group.workspace))
    names = {b.id: (b.name, b.is_own) for b in brands}
    shown = [
        {"item": item, "pieces": highlighted(item.text, workspace_id=group.workspace_id, brand_names=names)}
        for item in items[:ANSWERS_SHOWN]
    ]
    return render(
        request,
        "visibility/answers.html",
        {
            "group": group,
            "workspace": group.workspace,
            "provider": provider_label(provider) if provider in PROVIDER_IDS else "",
            "prompt_text": shown[0]["item"].prompt_text if shown and prompt.isdigit() else "",
            "answers": shown,
            "brands": brands,
        },
    )


def _brands_url(workspace_id) -> str:
    return reverse("workspace-detail", kwargs={"workspace_id": workspace_id}) + "#brands"


def _terms(raw: str) -> list[str]:
    """Aliases or domains typed as one comma-separated line (blank entries between commas are ignored)."""
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _brand_fields(request: HttpRequest) -> dict:
    """The brand form's fields (shared by the add and edit forms) as the brand services take them."""
    return {
        "name": request.POST.get("name", ""),
        "aliases": _terms(request.POST.get("aliases", "")),
        "domains": _terms(request.POST.get("domains", "")),
        "is_own": request.POST.get("is_own") == "on",
        "match_case": request.POST.get("match_case") == "on",
    }


@require_POST
@page_scoped
def brand_add_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    try:
        brand = brand_create(workspace=workspace, **_brand_fields(request))
    except DomainError as exc:
        messages.error(request, f"Brand not added: {exc.detail}")
    else:
        messages.success(request, f"Brand “{brand.name}” added; stored answers are re-analysed in a few seconds.")
    return redirect(_brands_url(workspace.id))


@require_POST
@page_scoped
def brand_edit_page(request: HttpRequest, brand_id: str) -> HttpResponse:
    brand = brand_get_for_user(user=request.user, brand_id=brand_id)
    try:
        brand_update(brand=brand, **_brand_fields(request))
    except DomainError as exc:
        messages.error(request, f"Brand not saved: {exc.detail}")
    else:
        messages.success(request, f"Brand “{brand.name}” saved; stored answers are re-analysed in a few seconds.")
    return redirect(_brands_url(brand.workspace_id))


@require_POST
@page_scoped
def brand_delete_page(request: HttpRequest, brand_id: str) -> HttpResponse:
    brand = brand_get_for_user(user=request.user, brand_id=brand_id)
    workspace_id, name = brand.workspace_id, brand.name
    brand_delete(brand=brand)
    messages.success(request, f"Brand “{name}” deleted with its figures.")
    return redirect(_brands_url(workspace_id))


@require_POST
@page_scoped
def samples_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    if not Membership.objects.filter(
        user=request.user, workspace=workspace, role=Membership.Role.OWNER
    ).exists():
        messages.error(request, "Only an owner of this workspace can change its samples per run.")
        return redirect(_brands_url(workspace.id))
    raw = request.POST.get("samples_per_run", "")
    try:
        workspace_update(workspace=workspace, samples_per_run=int(raw) if raw.strip().isdigit() else -1)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Each run now asks every prompt {workspace.samples_per_run} time(s) per provider.")
    return redirect(_brands_url(workspace.id))
