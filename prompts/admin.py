"""Admin for prompts: search by text, filter by workspace and active; writes go through the prompt services."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from oneglanse.exceptions import DomainError
from prompts.models import Prompt
from prompts.services import prompt_active_cap_check, prompt_create, prompt_update
from workspaces.admin import MemberScopedAdmin


class PromptAdminForm(forms.ModelForm):
    class Meta:
        model = Prompt
        fields = ["workspace", "text", "is_active"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Runs keep the words they asked; a reworded prompt is a new prompt (see workspaces/admin.py).
            self.fields["text"].disabled = True
            self.fields["workspace"].disabled = True

    def clean(self) -> dict:
        data = super().clean()
        workspace, wants_active = data.get("workspace"), data.get("is_active")
        was_active = bool(self.instance.pk) and self.initial.get("is_active", False)
        if workspace and wants_active and not was_active:
            try:
                prompt_active_cap_check(workspace_id=workspace.id)
            except DomainError as exc:
                raise forms.ValidationError(exc.detail) from None
        return data


@admin.register(Prompt)
class PromptAdmin(MemberScopedAdmin):
    form = PromptAdminForm
    list_display = ["text_preview", "workspace", "is_active", "created_at"]
    list_filter = [("workspace", admin.RelatedOnlyFieldListFilter), "is_active"]
    search_fields = ["text"]
    list_select_related = ["workspace"]
    readonly_fields = ["created_at"]
    actions = ["activate_prompts", "deactivate_prompts"]

    @admin.display(description="prompt", ordering="text")
    def text_preview(self, prompt: Prompt) -> str:
        return prompt.text if len(prompt.text) <= 120 else prompt.text[:119] + "…"

    def save_model(self, request: HttpRequest, obj: Prompt, form, change: bool) -> None:
        if change:
            if "is_active" in form.changed_data:
                prompt_update(prompt=Prompt.objects.get(pk=obj.pk), is_active=obj.is_active)
            return
        created = prompt_create(workspace=obj.workspace, text=obj.text)
        if not obj.is_active:
            created = prompt_update(prompt=created, is_active=False)
        # The admin goes on with `obj` (messages, log entry, redirect): make it the saved row.
        obj.pk, obj.created_at = created.pk, created.created_at
        obj._state.adding = False

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Prompt], *, is_active: bool) -> None:
        changed = 0
        for prompt in queryset.filter(is_active=not is_active):
            try:
                prompt_update(prompt=prompt, is_active=is_active)
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
                break
            changed += 1
        done = "activated" if is_active else "deactivated"
        self.message_user(request, f"{changed} prompt{'s' if changed != 1 else ''} {done}.")

    @admin.action(description="Activate selected prompts", permissions=["change"])
    def activate_prompts(self, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
        self._set_active(request, queryset, is_active=True)

    @admin.action(description="Deactivate selected prompts", permissions=["change"])
    def deactivate_prompts(self, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
        self._set_active(request, queryset, is_active=False)
