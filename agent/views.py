"""Server-rendered pages: the caller's workspaces, their prompts, and a run's live progress page.

Views are thin: a selector scopes every id to the caller's workspaces (anything else is 404), a
service does the writing (the same ones the API and the admin call), and a domain error becomes
a message on the page. The group page's script polls the JSON API for the live part.
"""
from __future__ import annotations

from functools import wraps
from itertools import groupby

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from agent import outcomes
from agent.display import provider_progress, run_outcome, run_problems
from agent.models import JobGroup
from agent.progress import progress_get
from agent.selectors import (
    job_group_finished_count,
    job_group_get_for_user,
    job_groups_of_workspace,
    job_groups_with_finished_count,
    job_item_counts_by_provider,
    job_items_of_group,
)
from agent.services.closing import job_group_cancel
from agent.services.submit import job_group_rerun, job_group_submit
from agent.throttles import submission_wait
from oneglanse.exceptions import DomainError, NotFound
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


def _page_scoped(view):
    """Domain NotFound (unknown, malformed or someone else's id) becomes the site's 404 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail) from None

    return login_required(wrapper)


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


@_page_scoped
def workspace_detail_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    return _workspace_detail(request, workspace, PromptAddForm())


def _workspace_detail(request: HttpRequest, workspace: Workspace, form: PromptAddForm, status: int = 200) -> HttpResponse:
    prompts = prompts_of_workspace(workspace=workspace).order_by("-is_active", "created_at", "id")
    runs = job_groups_with_finished_count(job_groups_of_workspace(workspace=workspace))
    runs_page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("runs_page"))
    for group in runs_page:
        group.finished_count = job_group_finished_count(group)
    return render(
        request,
        "workspaces/detail.html",
        {
            "workspace": workspace,
            "prompts": prompts,
            "active_prompts": sum(1 for p in prompts if p.is_active),
            "providers": [(p, provider_label(p)) for p in workspace.enabled_providers],
            "form": form,
            "runs_page": runs_page,
        },
        status=status,
    )


@require_POST
@_page_scoped
def workspace_run_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    wait = submission_wait(request)
    if wait is not None:
        return _throttled(request, lambda: _workspace_detail(request, workspace, PromptAddForm(), status=429), wait)
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
@_page_scoped
def prompt_add_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    form = PromptAddForm(request.POST)
    if not form.is_valid():
        return _workspace_detail(request, workspace, form, status=400)
    try:
        prompt_create(workspace=workspace, text=form.cleaned_data["text"])
    except DomainError as exc:
        form.add_error("text", exc.detail)
        return _workspace_detail(request, workspace, form, status=exc.status_code)
    messages.success(request, "Prompt added; it is asked on the next run.")
    return redirect(reverse("workspace-detail", kwargs={"workspace_id": workspace.id}) + "#prompts")


@require_POST
@_page_scoped
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


@_page_scoped
def run_detail_page(request: HttpRequest, group_id: str) -> HttpResponse:
    return _run_detail(request, job_group_get_for_user(user=request.user, group_id=group_id))


def _run_detail(request: HttpRequest, group: JobGroup, status: int = 200) -> HttpResponse:
    progress = progress_get(group)
    counts = job_item_counts_by_provider(group)
    provider_rows = {row.provider: row for row in group.group_providers.all()}
    errors = {provider: row.error for provider, row in provider_rows.items() if row.error}
    providers = provider_progress(progress, {p: c["all"] for p, c in counts.items()}, errors)
    finished = outcomes.finished_count(progress["stats"])
    outcome, outcome_label = run_outcome(progress, group.status)

    page_size = max(1, len(group.providers)) * ANSWER_PROMPTS_PER_PAGE
    answers_page = Paginator(job_items_of_group(group=group), page_size).get_page(request.GET.get("page"))
    prompts = [
        {
            "prompt_id": prompt_id,
            "text": items[0].prompt_text,
            "cells": [(p, next((i for i in items if i.provider == p), None)) for p in group.providers],
        }
        for prompt_id, items in ((key, list(rows)) for key, rows in groupby(answers_page, key=lambda item: item.prompt_id))
    ]
    unanswered = sum(c["failed"] + c["cancelled"] for c in counts.values())
    return render(
        request,
        "runs/detail.html",
        {
            "group": group,
            "workspace": group.workspace,
            "progress": progress,
            "finished": finished,
            "providers": providers,
            "outcome": outcome,
            "outcome_label": outcome_label,
            "problems": run_problems(progress, group, errors),
            "is_unfinished": group.status in JobGroup.UNFINISHED,
            "unanswered": unanswered,
            "answers_page": answers_page,
            "answers_page_size": page_size,
            "prompts": prompts,
        },
        status=status,
    )


@require_POST
@_page_scoped
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
@_page_scoped
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
