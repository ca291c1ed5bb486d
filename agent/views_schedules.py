"""The workspace page's Schedules section: its rows and form, and the add / pause / delete pages.

Kept apart from `views.py` so the section is one include and one context entry on the page.
Owners change schedules; members see them (the services enforce it; a refusal becomes a message).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from agent.cron import CronInvalid, cron_validate, timezone_validate
from agent.models import JobGroup, Priority, Schedule
from agent.selectors import schedule_get_for_user, schedules_of_workspace
from agent.services.schedules import schedule_create, schedule_delete, schedule_owner_check, schedule_update
from agent.views import workspace_detail_render
from oneglanse.exceptions import DomainError
from oneglanse.pages import page_scoped
from workspaces.members import NotOwner
from workspaces.models import Workspace
from workspaces.selectors import workspace_get_for_user

RECENT_RUNS_SHOWN = 5
COMMON_TIMEZONES = [
    "UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York", "America/Chicago",
    "America/Los_Angeles", "America/Sao_Paulo", "Asia/Kolkata", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney",
]


class ScheduleFieldsCleaning:
    """The checks every schedule form makes (page and admin), the same as the API's."""

    def clean_cron(self) -> str:
        try:
            return cron_validate(self.cleaned_data["cron"])
        except CronInvalid as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_timezone(self) -> str:
        try:
            timezone_validate(self.cleaned_data["timezone"])
        except CronInvalid as exc:
            raise forms.ValidationError(str(exc)) from None
        return self.cleaned_data["timezone"].strip()


class ScheduleForm(ScheduleFieldsCleaning, forms.Form):
    cron = forms.CharField(max_length=100, initial="0 6 * * *")
    timezone = forms.CharField(max_length=64, initial="UTC")
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.LOW)



@dataclass(frozen=True)
class ScheduleRow:
    schedule: Schedule
    recent_runs: list[JobGroup]

    def _local(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return f"{moment.astimezone(ZoneInfo(self.schedule.timezone)):%Y-%m-%d %H:%M}"

    @property
    def next_text(self) -> str:
        return self._local(self.schedule.next_run_at)

    @property
    def last_text(self) -> str:
        return self._local(self.schedule.last_run_at)

    @property
    def skip_text(self) -> str:
        return self._local(self.schedule.last_skip_at)

    @property
    def recent(self) -> list[tuple[JobGroup, str]]:
        """The runs it started, each with its slot in the schedule's time zone."""
        return [(run, self._local(run.scheduled_for)) for run in self.recent_runs]


@dataclass(frozen=True)
class ScheduleSection:
    rows: list[ScheduleRow]
    can_edit: bool
    form: ScheduleForm
    priorities: tuple[str, ...] = tuple(Priority.values)
    common_timezones: tuple[str, ...] = tuple(COMMON_TIMEZONES)


def schedules_section(*, workspace: Workspace, user, form: ScheduleForm | None = None) -> ScheduleSection:
    try:
        schedule_owner_check(workspace=workspace, user=user)
        can_edit = True
    except NotOwner:
        can_edit = False
    rows = [
        ScheduleRow(schedule=s, recent_runs=list(s.runs.order_by("-created_at")[:RECENT_RUNS_SHOWN]))
        for s in schedules_of_workspace(workspace=workspace)
    ]
    return ScheduleSection(rows=rows, can_edit=can_edit, form=form or ScheduleForm())


def _back(workspace_id) -> HttpResponse:
    return redirect(reverse("workspace-detail", args=[workspace_id]) + "#schedules")


@require_POST
@page_scoped
def schedule_add_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        return workspace_detail_render(request, workspace, schedule_form=form, status=400)
    try:
        schedule = schedule_create(workspace=workspace, user=request.user, **form.cleaned_data)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        next_run = ScheduleRow(schedule, []).next_text
        messages.success(request, f"Schedule added: “{schedule.cron}” ({schedule.timezone}); next run {next_run}.")
    return _back(workspace.id)


@require_POST
@page_scoped
def schedule_active_page(request: HttpRequest, schedule_id: str) -> HttpResponse:
    schedule = schedule_get_for_user(user=request.user, schedule_id=schedule_id)
    is_active = request.POST.get("is_active") == "true"
    try:
        schedule_update(schedule=schedule, user=request.user, is_active=is_active)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Schedule “{schedule.cron}” {'resumed' if is_active else 'paused'}.")
    return _back(schedule.workspace_id)


@require_POST
@page_scoped
def schedule_delete_page(request: HttpRequest, schedule_id: str) -> HttpResponse:
    schedule = schedule_get_for_user(user=request.user, schedule_id=schedule_id)
    try:
        schedule_delete(schedule=schedule, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Schedule “{schedule.cron}” deleted; the runs it started are kept.")
    return _back(schedule.workspace_id)
