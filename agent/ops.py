"""The operations page for staff (`/ops/`): the queues live, pause and resume, failures, runs in flight.

Anyone who is not staff gets the site's 404, as from the queue API. The page's script polls
GET /api/queues/ for the table and /ops/activity/ for the chart, failures and runs in flight.
"""
from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from agent.models import JobGroup, JobItem
from agent.queue_ops import queue_figures, queue_overview_list, queue_pause, queue_resume, queue_throughput
from oneglanse.exceptions import DomainError
from oneglanse.provider_ids import PROVIDER_IDS, PROVIDER_LABELS

RECENT_FAILURES = 50
RUNS_IN_FLIGHT = 50


def _staff_only(view):
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_staff:
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


def recent_failures(limit: int = RECENT_FAILURES) -> list[dict]:
    """The latest failed items, newest first (the (status, finished_at) index serves it)."""
    rows = (
        JobItem.objects.filter(status=JobItem.Status.FAILED).order_by("-finished_at")
        .values("id", "provider", "group_id", "prompt_id", "prompt_text", "error", "finished_at")[:limit]
    )
    return [
        {"item": row["id"], "provider": row["provider"], "provider_label": PROVIDER_LABELS.get(row["provider"], row["provider"]),
         "run": str(row["group_id"]), "run_url": reverse("admin:agent_jobgroup_change", args=[row["group_id"]]),
         "prompt": row["prompt_id"], "prompt_text": row["prompt_text"][:200], "error": row["error"][:500],
         "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None}
        for row in rows
    ]


def runs_in_flight(limit: int = RUNS_IN_FLIGHT) -> list[dict]:
    """Unfinished runs, oldest first: the ones an operator is waiting on longest lead."""
    groups = (
        JobGroup.objects.filter(status__in=JobGroup.UNFINISHED).select_related("workspace")
        .order_by("created_at")[:limit]
    )
    return [
        {"run": str(g.id), "run_url": reverse("admin:agent_jobgroup_change", args=[g.id]), "workspace": g.workspace.name,
         "status": g.status, "providers": g.providers, "expected": g.expected_responses, "created_at": g.created_at.isoformat()}
        for g in groups
    ]


@_staff_only
def ops_page(request: HttpRequest) -> HttpResponse:
    figures = queue_figures()
    return render(request, "ops/index.html", {
        "queues": queue_overview_list(figures),
        "labels": PROVIDER_LABELS,
        "providers": PROVIDER_IDS,
        "throughput": queue_throughput(figures),
        "failures": recent_failures(),
        "in_flight": runs_in_flight(),
    })


@_staff_only
def ops_activity(request: HttpRequest) -> JsonResponse:
    figures = queue_figures()
    return JsonResponse({
        "throughput": queue_throughput(figures),
        "failures": recent_failures(),
        "in_flight": runs_in_flight(),
    })


@require_POST
@_staff_only
def ops_queue_pause_page(request: HttpRequest, provider_id: str) -> HttpResponse:
    return _steer(request, provider_id, pause=True)


@require_POST
@_staff_only
def ops_queue_resume_page(request: HttpRequest, provider_id: str) -> HttpResponse:
    return _steer(request, provider_id, pause=False)


def _steer(request: HttpRequest, provider_id: str, *, pause: bool) -> HttpResponse:
    try:
        (queue_pause if pause else queue_resume)(provider_id=provider_id, user=request.user)
    except DomainError as exc:
        raise Http404(exc.detail) from None
    label = PROVIDER_LABELS.get(provider_id, provider_id)
    if pause:
        messages.success(request, f"{label} queue paused: no new item starts on any host; running items finish.")
    else:
        messages.success(request, f"{label} queue resumed: its consumers take items again.")
    return redirect("ops")
