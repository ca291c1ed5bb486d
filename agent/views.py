"""Server-rendered pages: the caller's workspaces, their prompts, and a run's live progress page.

Views are thin: a selector scopes every id to the caller's workspaces (anything else is 404), a
service does the writing (the same ones the API and the admin call), and a domain error becomes
a message on the page. The group page's script polls the JSON API for the live part.
"""
from __future__ import annotations

from itertools import groupby
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from agent import outcomes
from agent.answers_pagination import RunItemsPaginator
from agent.api import run_paused_providers
from agent.display import (
    group_duration,
    past_run_row,
    provider_progress,
    run_bar,
    run_cost,
    run_outcome,
    run_problems,
)
from agent.models import JobGroup, JobItem
from agent.progress import progress_from_database, progress_get
from agent.selectors import (
    job_group_failures_answered_later,
    job_group_get_for_user,
    job_group_reruns,
    job_group_status_counts,
    job_groups_of_workspace,
    job_groups_with_finished_count,
    job_item_counts_by_provider,
    job_item_error_groups,
    job_items_of_group,
    read_snapshot,
)
from agent.services.closing import job_group_cancel
from agent.services.submit import job_group_rerun, job_group_submit
from agent.throttles import submission_wait
from oneglanse.exceptions import DomainError
from oneglanse.pages import page_scoped
from oneglanse.provider_ids import provider_label
from prompts.models import PROMPT_TEXT_MAX_LENGTH
from prompts.selectors import prompt_get_for_user, prompts_of_workspace
from prompts.services import prompt_create, prompt_update
from workspaces.models import Workspace
from workspaces.selectors import workspace_get_for_user, workspaces_of_user, workspaces_with_active_prompt_count

# A page of answers holds this many prompts of a full run (x providers items), so a group of
# thousands of items never becomes one huge page and the script re-reads one small page at a time.
ANSWER_PROMPTS_PER_PAGE = 25
RUNS_PER_PAGE = 20


def _throttled(request: HttpRequest, render_page, wait: int) -> HttpResponse:
    """The page the button was on, with status 429, a message saying how long to wait, and Retry-After."""
    messages.error(request, f"Too many runs started in a short time; try again in {wait} s.")
    page = render_page()
    page["Retry-After"] = str(wait)
    return page


class PromptAddForm(forms.Form):
    text = forms.CharField(
        label="New prompt",
        max_length=PROMPT_TEXT_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "e.g. What is the best CRM for a small agency?"}),
        help_text="The question every enabled provider is asked on each run.",
    )


@login_required
def workspace_list_page(request: HttpRequest) -> HttpResponse:
    workspaces = workspaces_with_active_prompt_count(workspaces_of_user(user=request.user)).order_by("name", "created_at")
    return render(request, "workspaces/list.html", {"workspaces": workspaces})


@page_scoped
def workspace_detail_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    return workspace_detail_render(request, workspace, PromptAddForm())


def workspace_detail_render(
    request: HttpRequest, workspace: Workspace, form: PromptAddForm | None = None, status: int = 200, schedule_form=None,
) -> HttpResponse:
    from agent.views_schedules import schedules_section

    form = form or PromptAddForm()
    prompts = prompts_of_workspace(workspace=workspace).order_by("-is_active", "created_at", "id")
    runs = job_groups_with_finished_count(job_groups_of_workspace(workspace=workspace))
    runs_page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("runs_page"))
    open_counts = job_group_status_counts(group_ids=[g.id for g in runs_page if g.status in JobGroup.UNFINISHED])
    rows = [past_run_row(group, open_counts.get(group.id)) for group in runs_page]
    active_prompts = sum(1 for p in prompts if p.is_active)
    return render(
        request,
        "workspaces/detail.html",
        {
            "workspace": workspace,
            "prompts": prompts,
            "active_prompts": active_prompts,
            "providers": [(p, provider_label(p)) for p in workspace.enabled_providers],
            "cost": run_cost(workspace=workspace, prompts=active_prompts),
            "form": form,
            "runs_page": runs_page,
            "schedules": schedules_section(workspace=workspace, user=request.user, form=schedule_form),
            "runs": rows,
        },
        status=status,
    )


@require_POST
@page_scoped
def workspace_run_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    wait = submission_wait(request)
    if wait is not None:
        return _throttled(request, lambda: workspace_detail_render(request, workspace, PromptAddForm(), status=429), wait)
    try:
        submitted = job_group_submit(workspace=workspace, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("workspace-detail", workspace_id=workspace.id)
    if submitted.job_group is None:
        messages.warning(request, "Nothing to run: this workspace has no active prompts. Add one first.")
        return redirect("workspace-detail", workspace_id=workspace.id)
    return redirect("run-detail", group_id=submitted.job_group.id)


@require_POST
@page_scoped
def prompt_add_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    form = PromptAddForm(request.POST)
    if not form.is_valid():
        return workspace_detail_render(request, workspace, form, status=400)
    try:
        prompt_create(workspace=workspace, text=form.cleaned_data["text"])
    except DomainError as exc:
        form.add_error("text", exc.detail)
        return workspace_detail_render(request, workspace, form, status=exc.status_code)
    messages.success(request, "Prompt added; it is asked on the next run.")
    return redirect(reverse("workspace-detail", kwargs={"workspace_id": workspace.id}) + "#prompts")


@require_POST
@page_scoped
def prompt_active_page(request: HttpRequest, prompt_id: str) -> HttpResponse:
    prompt = prompt_get_for_user(user=request.user, prompt_id=prompt_id)
    is_active = request.POST.get("is_active") == "true"
    try:
        prompt_update(prompt=prompt, is_active=is_active)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Prompt {'activated' if is_active else 'deactivated'}: “{prompt.text[:60]}”.")
    return redirect(reverse("workspace-detail", kwargs={"workspace_id": prompt.workspace_id}) + "#prompts")


@page_scoped
def run_detail_page(request: HttpRequest, group_id: str) -> HttpResponse:
    return _run_detail(request, job_group_get_for_user(user=request.user, group_id=group_id))


def _answer_filters(request: HttpRequest, group: JobGroup) -> dict[str, str]:
    """The run page's provider and status filters; unknown values are ignored, never a 500."""
    provider = request.GET.get("provider", "")
    status = request.GET.get("status", "")
    return {
        "provider": provider if provider in group.providers else "",
        "status": status if status in JobItem.Status.values else "",
    }


def _run_detail(request: HttpRequest, group: JobGroup, status: int = 200) -> HttpResponse:
    filters = _answer_filters(request, group)
    page_size = max(1, len(group.providers)) * max(1, group.samples) * ANSWER_PROMPTS_PER_PAGE
    # Counters, bars and answer cards of the first render come from one database snapshot, so they
    # agree; the page script then follows the live progress object.
    with read_snapshot():
        progress = progress_get(group) if group.status not in JobGroup.UNFINISHED else progress_from_database(group)
        counts = job_item_counts_by_provider(group)
        provider_rows = {row.provider: row for row in group.group_providers.all()}
        items = job_items_of_group(group=group, provider=filters["provider"] or None, status=filters["status"] or None)
        # The counts above give the page count: no COUNT(*) over a 100,000-item run.
        known = sum(c[filters["status"] or "all"] for p, c in counts.items()
                    if p == filters["provider"] or not filters["provider"])
        answers_page = RunItemsPaginator(items, page_size, count=known).get_page(request.GET.get("page"))
        answers = list(answers_page)
        error_groups = job_item_error_groups(group=group)
        reruns = job_group_reruns(group=group)
        answered_later = job_group_failures_answered_later(group=group) if reruns else 0
    errors = {provider: row.error for provider, row in provider_rows.items() if row.error}
    providers = provider_progress(progress, {p: c["all"] for p, c in counts.items()}, errors)
    outcome, outcome_label = run_outcome(progress, group.status)
    shown = [filters["provider"]] if filters["provider"] else list(group.providers)
    prompts = [
        {
            "prompt_id": prompt_id,
            "text": rows[0].prompt_text,
            "columns": len(shown),
            # One row of providers per sample (the grid has one column per provider).
            "cells": [
                (p, next((i for i in rows if i.provider == p and i.sample == n), None))
                for n in range(1, max(1, group.samples) + 1)
                for p in shown
            ],
        }
        for prompt_id, rows in ((key, list(rows)) for key, rows in groupby(answers, key=lambda item: item.prompt_id))
    ]
    unanswered = sum(c["failed"] + c["cancelled"] for c in counts.values())
    active_prompts = prompts_of_workspace(workspace=group.workspace).filter(is_active=True).count()
    return render(
        request,
        "runs/detail.html",
        {
            "group": group,
            "workspace": group.workspace,
            "progress": progress,
            "bar": run_bar(progress, group.status),
            "finished": outcomes.finished_count(progress["stats"]),
            "providers": providers,
            "outcome": outcome,
            "outcome_label": outcome_label,
            "problems": run_problems(progress, group, errors),
            "error_groups": [{**row, "label": provider_label(row["provider"])} for row in error_groups],
            "reruns": reruns,
            "answered_later": answered_later,
            "is_unfinished": group.status in JobGroup.UNFINISHED,
            "unanswered": unanswered,
            "rerun_cost": run_cost(workspace=group.workspace, prompts=active_prompts),
            "rerun_failed_cost": run_cost(workspace=group.workspace, prompts=0, items=unanswered),
            "answers_page": answers_page,
            "answers_page_size": page_size,
            "prompts": prompts,
            "filters": filters,
            "filter_query": urlencode({k: v for k, v in filters.items() if v}),
            "provider_choices": [(p, provider_label(p)) for p in group.providers],
            "status_choices": JobItem.Status.values,
            "trigger": getattr(group, "trigger", ""),
            "duration": group_duration(group),
            "paused_providers": run_paused_providers(group, progress),
        },
        status=status,
    )


@require_POST
@page_scoped
def run_cancel_page(request: HttpRequest, group_id: str) -> HttpResponse:
    group = job_group_get_for_user(user=request.user, group_id=group_id)
    try:
        cancelled = job_group_cancel(group=group)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        still = f"; {cancelled.running_items} already running will finish" if cancelled.running_items else ""
        messages.success(
            request,
            f"Run cancelled: {cancelled.cancelled_items} waiting items cancelled{still}. Answers already received are kept.",
        )
    return redirect("run-detail", group_id=group.id)


@require_POST
@page_scoped
def run_rerun_page(request: HttpRequest, group_id: str) -> HttpResponse:
    group = job_group_get_for_user(user=request.user, group_id=group_id)
    wait = submission_wait(request)
    if wait is not None:
        return _throttled(request, lambda: _run_detail(request, group, status=429), wait)
    only_failed = request.POST.get("only_failed") == "true"
    try:
        submitted = job_group_rerun(group=group, user=request.user, only_failed=only_failed)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("run-detail", group_id=group.id)
    if submitted.job_group is None:
        messages.warning(
            request,
            "Nothing to re-run: every item of this run was answered." if only_failed
            else "Nothing to run: this workspace has no active prompts.",
        )
        return redirect("run-detail", group_id=group.id)
    messages.success(request, "Re-run of the failed items started." if only_failed else "Re-run started.")
    return redirect("run-detail", group_id=submitted.job_group.id)
