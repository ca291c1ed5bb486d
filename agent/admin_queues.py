"""Admin for the provider queues: every queue listed, with pause and resume as admin actions."""
from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agent.models import ProviderQueue
from agent.queue_ops import queue_pause, queue_resume
from oneglanse.provider_ids import PROVIDER_IDS


@admin.register(ProviderQueue)
class ProviderQueueAdmin(admin.ModelAdmin):
    list_display = ["provider", "paused", "paused_by", "paused_at", "resumed_at"]
    readonly_fields = ["provider", "paused", "paused_by", "paused_at", "resumed_at"]
    actions = ["queues_pause", "queues_resume"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Every provider has a row to act on, including one nobody has paused yet.
        ProviderQueue.objects.bulk_create([ProviderQueue(provider=p) for p in PROVIDER_IDS], ignore_conflicts=True)
        return super().get_queryset(request).select_related("paused_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Pause the selected queues (running items finish)", permissions=["change"])
    def queues_pause(self, request: HttpRequest, queryset: QuerySet) -> None:
        providers = [q.provider for q in queryset]
        for provider_id in providers:
            queue_pause(provider_id=provider_id, user=request.user)
        self.message_user(request, f"Paused: {', '.join(providers)}. No new item of them starts on any host.", messages.SUCCESS)

    @admin.action(description="Resume the selected queues", permissions=["change"])
    def queues_resume(self, request: HttpRequest, queryset: QuerySet) -> None:
        providers = [q.provider for q in queryset]
        for provider_id in providers:
            queue_resume(provider_id=provider_id, user=request.user)
        self.message_user(request, f"Resumed: {', '.join(providers)}.", messages.SUCCESS)
