"""Admin for runs (`JobGroup` in code): a list that costs the same few queries for any number of rows, a
read-only run page with its items on paginated pages, and re-run / cancel actions that call
the same services as the API.

A staff user who is not a superuser sees only runs of the workspaces they belong to.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from agent.answers_pagination import RunItemsPaginator
from agent.display import STATE_MARK, group_bar, group_duration
from agent.models import JobGroup, JobGroupProvider, JobItem, Schedule
from agent.progress import progress_get
from agent.selectors import (
    job_group_finished_count,
    job_group_reruns,
    job_groups_with_finished_count,
    job_item_counts_by_provider,
    job_items_of_group,
)
from agent.services.closing import job_group_cancel
from agent.services.schedules import schedule_create, schedule_delete, schedule_update
from agent.services.submit import job_group_rerun
from agent.templatetags.agent_display import split_bar
from agent.views_schedules import ScheduleFieldsCleaning
from oneglanse.exceptions import DomainError
from oneglanse.provider_ids import PROVIDER_IDS, provider_label
from workspaces.admin import MemberScopedAdmin, MemberWorkspaceListFilter

ITEMS_PER_PAGE = 50


def _provider_counts(final: dict | None, provider: str) -> str:
    if not final:
        return ""
    return f" · {final['results'].get(provider, 0)} ok, {final['failed'].get(provider, 0)} failed"


def _to_the_second(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


class ProviderListFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [(p, provider_label(p)) for p in PROVIDER_IDS]

    def queryset(self, request, queryset):
        if self.value():
            # One row per (group, provider), so the join never repeats a group.
            return queryset.filter(group_providers__provider=self.value())
        return queryset


class JobGroupProviderInline(admin.TabularInline):
    model = JobGroupProvider
    fields = ["provider", "status", "error", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JobGroup)
class JobGroupAdmin(MemberScopedAdmin):
    list_display = [
        "short_id", "workspace", "outcome", "progress_bar", "provider_states", "trigger", "priority", "triggered_by",
        "created_to_the_second", "duration",
    ]
    list_display_links = ["short_id"]
    list_filter = ["status", "trigger", "priority", ("workspace", MemberWorkspaceListFilter), ProviderListFilter]
    search_fields = ["id"]
    search_help_text = "Search by run id (the whole id or a part of it)."
    list_select_related = ["workspace", "triggered_by"]
    list_per_page = 50
    show_full_result_count = False  # one COUNT(*) fewer on a table that only grows

    class Media:
        css = {"all": ["agent/admin.css"]}  # styles live in static files: the CSP allows no inline ones
    ordering = ["-created_at"]
    actions = ["rerun_groups", "rerun_failed_items", "cancel_groups"]
    inlines = [JobGroupProviderInline]
    change_form_template = "admin/agent/jobgroup/change_form.html"
    fieldsets = [
        (None, {"fields": ["id", "workspace", "outcome", "progress_bar", "triggered_by", "rerun_of_link", "reruns_links"]}),
        ("Trigger", {"fields": ["trigger", "priority", "run_at", "schedule", "scheduled_for", "late"]}),
        ("Size and timing", {
            "fields": ["providers_text", "total_prompts", "samples", "expected_responses", "created_to_the_second",
                       "finished_to_the_second", "duration"],
        }),
        ("Outcome", {"fields": ["error", "progress_text"]}),
    ]
    readonly_fields = [
        "id", "workspace", "outcome", "progress_bar", "triggered_by", "rerun_of_link", "reruns_links", "providers_text",
        "total_prompts", "samples", "expected_responses", "created_to_the_second", "finished_to_the_second", "duration", "error",
        "progress_text",
        "trigger", "priority", "run_at", "schedule", "scheduled_for", "late",
    ]

    def view_on_site(self, group: JobGroup) -> str:
        return reverse("run-detail", args=[group.id])

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobGroup]:
        # Provider rows in one prefetch query and the live count as an annotation: the list
        # costs the same number of queries for 5 rows or 50.
        return job_groups_with_finished_count(super().get_queryset(request)).prefetch_related("group_providers")

    # The audit trail is written by the services only: nothing here is added, edited or deleted.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="id", ordering="id")
    def short_id(self, group: JobGroup) -> str:
        return str(group.id)[:8]

    def _bar(self, group: JobGroup):
        # An open run's split is not known without counting its items per status; the list shows
        # "N of M finished" in words for it and splits the bar once the run closed.
        finished = job_group_finished_count(group)
        return group_bar(group, {"running": 1} if finished else {})

    @admin.display(description="outcome", ordering="status")
    def outcome(self, group: JobGroup) -> str:
        bar = self._bar(group)
        return format_html('<span class="outcome outcome-{}">{}</span>', bar.outcome, bar.outcome_label)

    @admin.display(description="progress")
    def progress_bar(self, group: JobGroup) -> str:
        bar = self._bar(group)
        if group.status in JobGroup.UNFINISHED:
            words = f"{job_group_finished_count(group)} of {bar.expected} finished"
        else:
            words = f"{bar.ok} answered · {bar.failed} failed · {bar.cancelled} cancelled of {bar.expected}"
        return format_html('<span class="run-bar">{}</span> <span class="counts-line">{}</span>',
                           render_to_string("runs/_bar.html", split_bar(bar)), words)

    @admin.display(description="providers")
    def provider_states(self, group: JobGroup) -> str:
        rows = group.group_providers.all()  # prefetched
        final = group.progress if group.status not in JobGroup.UNFINISHED and group.progress else None
        items = format_html_join(
            "", '<li class="provider-state provider-state-{}" title="{}">{} {} {}{}</li>',
            (
                (
                    row.status, row.error or row.status, provider_label(row.provider), STATE_MARK.get(row.status, ""),
                    row.status,
                    _provider_counts(final, row.provider),
                )
                for row in rows
            ),
        )
        return format_html('<ul class="provider-states">{}</ul>', items)

    @admin.display(description="created", ordering="created_at")
    def created_to_the_second(self, group: JobGroup) -> str:
        return _to_the_second(group.created_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished_to_the_second(self, group: JobGroup) -> str:
        return _to_the_second(group.finished_at)

    @admin.display(description="duration")
    def duration(self, group: JobGroup) -> str:
        return group_duration(group)

    @admin.display(description="providers")
    def providers_text(self, group: JobGroup) -> str:
        return ", ".join(provider_label(p) for p in group.providers) or "—"

    @admin.display(description="progress")
    def progress_text(self, group: JobGroup) -> str:
        progress = progress_get(group)
        stats = progress["stats"]
        rows = [
            ("Status", progress["status"]), ("Update", progress["updateId"]),
            ("Answered", stats["actualResponses"]), ("Failed", stats["failedResponses"]),
            ("Cancelled", stats["cancelledResponses"]), ("Expected", stats["expectedResponses"]),
            *((provider_label(p), f"{state} · {progress['results'].get(p, 0)} ok, {progress['failed'].get(p, 0)} failed")
              for p, state in progress["providers"].items()),
        ]
        if progress.get("error"):
            rows.append(("Error", progress["error"]))
        return format_html('<div class="admin-progress"><dl>{}</dl></div>',
                           format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows))

    @admin.display(description="re-runs")
    def reruns_links(self, group: JobGroup) -> str:
        reruns = job_group_reruns(group=group)
        if not reruns:
            return "—"
        return format_html_join(
            ", ", '<a href="{}">{}</a> ({})',
            ((reverse("admin:agent_jobgroup_change", args=[r.id]), str(r.id)[:8], r.status) for r in reruns),
        )

    @admin.display(description="re-run of")
    def rerun_of_link(self, group: JobGroup) -> str:
        if not group.rerun_of_id:
            return "—"
        url = reverse("admin:agent_jobgroup_change", args=[group.rerun_of_id])
        return format_html('<a href="{}">{}</a>', url, group.rerun_of_id)

    # --- actions: each calls the service the API calls ---

    def _rerun(self, request: HttpRequest, queryset: QuerySet[JobGroup], *, only_failed: bool) -> HttpResponseRedirect | None:
        started: list[JobGroup] = []
        for group in queryset.select_related("workspace"):
            try:
                submitted = job_group_rerun(group=group, user=request.user, only_failed=only_failed)
            except DomainError as exc:
                self.message_user(request, f"Run {str(group.id)[:8]}: {exc.detail}", messages.ERROR)
                continue
            if submitted.job_group is None:
                why = "no failed or cancelled items" if only_failed else "the workspace has no active prompts"
                self.message_user(request, f"Run {str(group.id)[:8]}: nothing to re-run ({why}).", messages.WARNING)
            else:
                started.append(submitted.job_group)
        if started:
            self.message_user(
                request,
                f"Started {len(started)} re-run{'s' if len(started) != 1 else ''}"
                f"{' of failed items' if only_failed else ''}: {', '.join(str(g.id)[:8] for g in started)}.",
                messages.SUCCESS,
            )
        if len(started) == 1:
            return HttpResponseRedirect(reverse("admin:agent_jobgroup_change", args=[started[0].id]))
        return None

    @admin.action(description="Re-run all", permissions=["change"])
    def rerun_groups(self, request: HttpRequest, queryset: QuerySet[JobGroup]):
        return self._rerun(request, queryset, only_failed=False)

    @admin.action(description="Re-run failed only", permissions=["change"])
    def rerun_failed_items(self, request: HttpRequest, queryset: QuerySet[JobGroup]):
        return self._rerun(request, queryset, only_failed=True)

    @admin.action(description="Cancel", permissions=["change"])
    def cancel_groups(self, request: HttpRequest, queryset: QuerySet[JobGroup]) -> None:
        for group in queryset:
            try:
                cancelled = job_group_cancel(group=group)
            except DomainError as exc:
                self.message_user(request, f"Run {str(group.id)[:8]}: {exc.detail}", messages.ERROR)
                continue
            still = f"; {cancelled.running_items} running will finish" if cancelled.running_items else ""
            self.message_user(
                # "Run …" first: the admin capitalises a message's first letter, which would change the id.
                request, f"Run {str(group.id)[:8]} cancelled: {cancelled.cancelled_items} items cancelled{still}.",
                messages.SUCCESS,
            )

    # --- the group page: buttons for the same actions, and the items on pages of their own ---

    def get_urls(self):
        own = [
            path("<path:object_id>/items/", self.admin_site.admin_view(self.items_view), name="agent_jobgroup_items"),
            path("<path:object_id>/act/<str:action>/", self.admin_site.admin_view(self.group_action_view),
                 name="agent_jobgroup_act"),
        ]
        return own + super().get_urls()

    def _group_or_404(self, request: HttpRequest, object_id: str) -> JobGroup:
        group = self.get_object(request, object_id)  # scoped by get_queryset; malformed ids give None
        if group is None:
            raise Http404("No such run.")
        return group

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None) -> HttpResponse:
        group = self._group_or_404(request, object_id)
        counts = job_item_counts_by_provider(group)
        extra_context = {
            **(extra_context or {}),
            "show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False, "show_delete": False,
            "item_counts": [
                (p, provider_label(p), [(status, c[status]) for status in JobItem.Status.values], c["all"])
                for p, c in counts.items()
            ],
            "items_per_page": ITEMS_PER_PAGE,
            "item_statuses": JobItem.Status.values,
            "can_act": self.has_change_permission(request, group),
            "is_unfinished": group.status in JobGroup.UNFINISHED,
            "unanswered": sum(c["failed"] + c["cancelled"] for c in counts.values()),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def group_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        group = self._group_or_404(request, object_id)
        if not self.has_change_permission(request, group):
            raise PermissionDenied
        handlers = {"rerun": self.rerun_groups, "rerun-failed": self.rerun_failed_items, "cancel": self.cancel_groups}
        if action not in handlers:
            raise Http404("Unknown action.")
        response = handlers[action](request, JobGroup.objects.filter(id=group.id))
        return response or HttpResponseRedirect(reverse("admin:agent_jobgroup_change", args=[group.id]))

    def items_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        group = self._group_or_404(request, object_id)
        if not self.has_view_or_change_permission(request, group):
            raise PermissionDenied
        provider = request.GET.get("provider") or None
        status = request.GET.get("status") or None
        try:
            items = job_items_of_group(group=group, provider=provider, status=status)
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            items = job_items_of_group(group=group)
            provider = status = None
        # The run's own figures give the count: no COUNT(*) over a 100,000-item run per page.
        known = group.expected_responses if not (provider or status) else None
        page = RunItemsPaginator(items, ITEMS_PER_PAGE, count=known).get_page(request.GET.get("page"))
        query = "&".join(f"{k}={v}" for k, v in (("provider", provider), ("status", status)) if v)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Items of run {str(group.id)[:8]}",
            "subtitle": None,
            "opts": self.model._meta,
            "original": group,
            "group": group,
            "page": page,
            "providers": [(p, provider_label(p)) for p in group.providers],
            "statuses": JobItem.Status.values,
            "provider": provider,
            "status": status,
            "query": query,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/agent/jobgroup/items.html", context)


class ScheduleAdminForm(ScheduleFieldsCleaning, forms.ModelForm):
    """The same checks as the API: a valid five-field cron and an IANA time zone."""

    class Meta:
        model = Schedule
        fields = ["workspace", "cron", "timezone", "priority", "is_active"]


@admin.register(Schedule)
class ScheduleAdmin(MemberScopedAdmin):
    """Schedules; saving goes through the schedule services (the owner rule, the next run)."""

    form = ScheduleAdminForm
    list_display = ["cron", "timezone", "workspace", "priority", "is_active", "next_run_at", "last_run_at",
                    "last_skip_reason", "created_by"]
    list_filter = ["is_active", "priority", ("workspace", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["workspace", "created_by"]
    readonly_fields = ["next_run_at", "last_run_at", "last_skip_reason", "last_skip_at", "created_by", "created_at"]

    def save_model(self, request: HttpRequest, obj: Schedule, form, change: bool) -> None:
        values = {name: form.cleaned_data[name] for name in ("cron", "timezone", "priority", "is_active")}
        try:
            if change:
                schedule_update(schedule=obj, user=request.user, **values)
            else:
                obj.pk = schedule_create(workspace=form.cleaned_data["workspace"], user=request.user, **values).pk
        except DomainError as exc:
            raise PermissionDenied(exc.detail) from None

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        try:
            schedule_delete(schedule=obj, user=request.user)
        except DomainError as exc:
            raise PermissionDenied(exc.detail) from None


from agent import admin_queues  # noqa: E402,F401  (registers the queue admin)
