"""Admin for workspaces: members, enabled providers as a choice of known providers, prompts inline.

Staff who are not superusers see and edit only the workspaces they are members of; the base
class here scopes the other apps' admins (prompts, job groups) the same way.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from oneglanse.exceptions import DomainError
from oneglanse.provider_ids import PROVIDER_IDS, PROVIDER_LABELS
from prompts.models import Prompt
from prompts.services import prompt_active_cap_check, prompt_create, prompt_update
from workspaces.members import membership_is_owner
from workspaces.models import Membership, Workspace
from workspaces.selectors import workspaces_of_user
from workspaces.services import workspace_update


class MemberScopedAdmin(admin.ModelAdmin):
    """Superusers see every row; other staff only rows of the workspaces they are members of."""

    workspace_lookup = "workspace"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.workspace_lookup}__in": workspaces_of_user(user=request.user)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "workspace" and not request.user.is_superuser:
            kwargs["queryset"] = workspaces_of_user(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class MemberWorkspaceListFilter(admin.RelatedFieldListFilter):
    """The caller's workspaces (every one for superusers), read from the workspaces themselves.

    Django's RelatedOnlyFieldListFilter reads `DISTINCT workspace_id` over every listed row the
    caller may see, a cost that grows with every tenant's runs; this one grows with workspaces.
    """

    def field_choices(self, field, request: HttpRequest, model_admin) -> list[tuple[object, str]]:
        workspaces = Workspace.objects.all() if request.user.is_superuser else workspaces_of_user(user=request.user)
        return [(w.pk, str(w)) for w in workspaces.order_by("name", "created_at")]


def provider_choices() -> list[tuple[str, str]]:
    return [(p, PROVIDER_LABELS.get(p, p)) for p in PROVIDER_IDS]


class WorkspaceAdminForm(forms.ModelForm):
    enabled_providers = forms.MultipleChoiceField(
        choices=provider_choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Every run asks each active prompt of every provider ticked here.",
        error_messages={"required": "Enable at least one provider."},
    )

    class Meta:
        model = Workspace
        fields = ["name", "enabled_providers", "samples_per_run"]

    def clean_enabled_providers(self) -> list[str]:
        chosen = set(self.cleaned_data["enabled_providers"])
        return [p for p in PROVIDER_IDS if p in chosen]  # a stable order, whatever the ticking order


class MembershipInlineFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if self.instance._state.adding:
            return  # a new workspace: its creator becomes its owner when it is saved
        roles = dict(Membership.objects.filter(workspace=self.instance).values_list("pk", "role"))
        for form in self.forms:
            if not getattr(form, "cleaned_data", None):
                continue
            key = form.instance.pk or id(form)
            if self.can_delete and self._should_delete_form(form):
                roles.pop(key, None)
            elif "role" in form.cleaned_data:
                roles[key] = form.cleaned_data["role"]
        if Membership.Role.OWNER not in roles.values():
            raise forms.ValidationError("A workspace needs at least one owner; make someone else an owner first.")


class MembershipInline(admin.TabularInline):
    """Members and roles; only owners (and superusers) change them, as in the members API."""

    model = Membership
    formset = MembershipInlineFormSet
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]
    extra = 0

    def _may_change(self, request: HttpRequest, obj: Workspace | None) -> bool:
        if request.user.is_superuser or obj is None:
            return True  # on the add page the creator becomes the owner
        return membership_is_owner(user=request.user, workspace=obj)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_change(request, obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_change(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_change(request, obj) and super().has_delete_permission(request, obj)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return True  # members see who else is in their workspace (the queryset is scoped already)


def _activated_by(formset: BaseInlineFormSet) -> int:
    """How many more of the workspace's prompts are active once this formset is saved (may be negative)."""
    activated = 0
    for form in formset.forms:
        if not form.has_changed() or not hasattr(form, "cleaned_data"):
            continue
        wants_active = form.cleaned_data.get("is_active", False)
        was_active = bool(form.instance.pk) and form.initial.get("is_active", False)
        activated += int(wants_active) - int(was_active)
    return activated


class PromptInlineFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        try:
            prompt_active_cap_check(workspace_id=self.instance.pk, adding=_activated_by(self))
        except DomainError as exc:
            raise forms.ValidationError(exc.detail) from None


class PromptInlineForm(forms.ModelForm):
    class Meta:
        model = Prompt
        fields = ["text", "is_active"]
        widgets = {"text": forms.Textarea(attrs={"rows": 2, "cols": 80})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Runs keep the text they asked; editing a prompt's words would make old and new
            # answers look comparable when they are not. Deactivate it and add a new one instead.
            self.fields["text"].disabled = True


class PromptInline(admin.TabularInline):
    model = Prompt
    form = PromptInlineForm
    formset = PromptInlineFormSet
    fields = ["text", "is_active", "created_at"]
    readonly_fields = ["created_at"]
    extra = 1
    can_delete = False
    show_change_link = True


def prompt_formset_save(formset: BaseInlineFormSet) -> None:
    """Save a prompt formset through the prompt services, recording what changed for the admin log."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for form in formset.forms:
        if not form.has_changed():
            continue
        if form.instance.pk is None:
            prompt = prompt_create(workspace=formset.instance, text=form.cleaned_data["text"])
            if not form.cleaned_data.get("is_active", True):
                prompt = prompt_update(prompt=prompt, is_active=False)
            form.instance = prompt
            formset.new_objects.append(prompt)
        elif "is_active" in form.changed_data:
            prompt = prompt_update(prompt=Prompt.objects.get(pk=form.instance.pk), is_active=form.cleaned_data["is_active"])
            formset.changed_objects.append((prompt, ["is_active"]))


@admin.register(Workspace)
class WorkspaceAdmin(MemberScopedAdmin):
    workspace_lookup = "pk"
    form = WorkspaceAdminForm
    list_display = ["name", "providers", "member_count", "active_prompt_count", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["id", "created_at"]
    fields = ["id", "name", "enabled_providers", "created_at"]
    inlines = [MembershipInline, PromptInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Workspace | None = None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and not request.user.is_superuser and not membership_is_owner(user=request.user, workspace=obj):
            readonly += ["name", "enabled_providers"]  # owner-only, as PATCH /api/workspaces/{id}/
        return readonly

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return super().get_queryset(request).annotate(
            member_count=Count("memberships", distinct=True),
            active_prompt_count=Count("prompts", filter=Q(prompts__is_active=True), distinct=True),
        )

    @admin.display(description="enabled providers")
    def providers(self, workspace: Workspace) -> str:
        return ", ".join(PROVIDER_LABELS.get(p, p) for p in workspace.enabled_providers) or "none"

    @admin.display(description="members", ordering="member_count")
    def member_count(self, workspace: Workspace) -> int:
        return workspace.member_count

    @admin.display(description="active prompts", ordering="active_prompt_count")
    def active_prompt_count(self, workspace: Workspace) -> int:
        return workspace.active_prompt_count

    def save_model(self, request: HttpRequest, obj: Workspace, form, change: bool) -> None:
        if change:
            if not request.user.is_superuser and not membership_is_owner(user=request.user, workspace=obj):
                return  # the fields were read-only for them; nothing of the workspace itself changes
            workspace_update(workspace=obj, name=obj.name, enabled_providers=obj.enabled_providers)
        else:
            obj.save()

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change:
            # As with the API, whoever creates a workspace is its owner, so it shows up on their pages
            # (and, for staff who are not superusers, in this admin at all).
            Membership.objects.get_or_create(user=request.user, workspace=form.instance, defaults={"role": Membership.Role.OWNER})

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is Prompt:
            try:
                prompt_formset_save(formset)
            except DomainError as exc:  # the formset's clean checks the same rule; a race can still trip it
                self.message_user(request, exc.detail, messages.ERROR)
            return
        super().save_formset(request, form, formset, change)
