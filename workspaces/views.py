"""Pages of a workspace's own settings (name, providers, samples per run) and of its members.

Owners change them; members read them. The writing goes through the same services as the API,
so a page is never a way around a rule (the last owner, a known provider, a known user).
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from oneglanse.exceptions import DomainError
from oneglanse.pages import page_scoped
from oneglanse.provider_ids import PROVIDER_IDS, PROVIDER_LABELS
from workspaces.members import membership_add, membership_change_role, membership_is_owner, membership_remove
from workspaces.models import Membership, Workspace
from workspaces.selectors import workspace_get_for_user
from workspaces.services import WORKSPACE_NAME_MAX_LENGTH, workspace_create, workspace_update

# The samples field exists once the model has it; the form follows the model, not a guess.
HAS_SAMPLES = any(field.name == "samples_per_run" for field in Workspace._meta.get_fields())
SAMPLES_MIN, SAMPLES_MAX = 1, 10


class WorkspaceForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=WORKSPACE_NAME_MAX_LENGTH, strip=True,
        help_text="Usually the brand you track, e.g. “Acme CRM”.",
        error_messages={"required": "Give the workspace a name."},
    )
    enabled_providers = forms.MultipleChoiceField(
        label="Providers", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(p, PROVIDER_LABELS.get(p, p)) for p in PROVIDER_IDS],
        help_text="Each run asks every active prompt to every provider ticked here.",
    )
    if HAS_SAMPLES:
        samples_per_run = forms.IntegerField(
            label="Samples per run", min_value=SAMPLES_MIN, max_value=SAMPLES_MAX, initial=1, required=False,
            help_text="Assistants answer differently each time: ask each prompt this many times per provider (1–10).",
        )

    def clean_enabled_providers(self) -> list[str]:
        chosen = set(self.cleaned_data["enabled_providers"])
        return [p for p in PROVIDER_IDS if p in chosen]  # a stable order, whatever the ticking order


def _form_save(form: WorkspaceForm, save) -> Workspace | None:
    """Run a service with the form's data; a domain error lands on its field, not on a 500."""
    # A field left out of the form (samples per run) keeps its current value, or the default.
    data = {field: value for field, value in form.cleaned_data.items() if value is not None}
    try:
        return save(**data)
    except DomainError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return None


def _form_page(request, *, form, workspace=None, read_only=False, status=200) -> HttpResponse:
    context = {"form": form, "workspace": workspace, "read_only": read_only,
               "samples_min": SAMPLES_MIN, "samples_max": SAMPLES_MAX}
    return render(request, "workspaces/form.html", context, status=status)


@login_required
def workspace_create_page(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _form_page(request, form=WorkspaceForm(initial={"enabled_providers": list(PROVIDER_IDS)}))
    form = WorkspaceForm(request.POST)
    workspace = form.is_valid() and _form_save(form, lambda **data: workspace_create(user=request.user, **data))
    if not workspace:
        return _form_page(request, form=form, status=400)
    messages.success(request, f"Workspace “{workspace.name}” created; you are its owner. Add the prompts to ask.")
    return redirect("workspace-detail", workspace_id=workspace.id)


@page_scoped
def workspace_edit_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    is_owner = membership_is_owner(user=request.user, workspace=workspace)
    current = {"name": workspace.name, "enabled_providers": list(workspace.enabled_providers)}
    if HAS_SAMPLES:
        current["samples_per_run"] = workspace.samples_per_run
    if request.method != "POST":
        return _form_page(request, form=WorkspaceForm(initial=current), workspace=workspace, read_only=not is_owner)
    if not is_owner:
        raise PermissionDenied("Only an owner of this workspace can change its settings.")
    form = WorkspaceForm(request.POST)
    saved = form.is_valid() and _form_save(form, lambda **data: workspace_update(workspace=workspace, **data))
    if not saved:
        return _form_page(request, form=form, workspace=workspace, status=400)
    messages.success(request, "Settings saved; the next run uses them.")
    return redirect("workspace-detail", workspace_id=workspace.id)


class MemberAddForm(forms.Form):
    username = forms.CharField(
        label="Username", max_length=150, strip=True,
        help_text="They need an account on this service already.",
        error_messages={"required": "Give the username of the person to add."},
    )
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


def _members_page(request, workspace: Workspace, form: MemberAddForm | None = None, status: int = 200) -> HttpResponse:
    memberships = Membership.objects.filter(workspace=workspace).select_related("user").order_by("role", "user__username")
    return render(request, "workspaces/members.html", {
        "workspace": workspace,
        "memberships": sorted(memberships, key=lambda m: (m.role != Membership.Role.OWNER, m.user.get_username().lower())),
        "is_owner": membership_is_owner(user=request.user, workspace=workspace),
        "roles": Membership.Role.choices,
        "form": form or MemberAddForm(),
    }, status=status)


@page_scoped
def workspace_members_page(request: HttpRequest, workspace_id: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    if request.method != "POST":
        return _members_page(request, workspace)
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return _members_page(request, workspace, form, status=400)
    try:
        membership_add(by=request.user, workspace=workspace, **form.cleaned_data)
    except DomainError as exc:
        if exc.status_code == 403:
            raise PermissionDenied(exc.detail) from None
        form.add_error("username" if exc.field in (None, "username") else None, exc.detail)
        return _members_page(request, workspace, form, status=exc.status_code)
    messages.success(request, f"{form.cleaned_data['username']} added as {form.cleaned_data['role']}.")
    return redirect("workspace-members", workspace_id=workspace.id)


@require_POST
@page_scoped
def workspace_member_page(request: HttpRequest, workspace_id: str, username: str) -> HttpResponse:
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    try:
        if request.POST.get("action") == "remove":
            membership_remove(by=request.user, workspace=workspace, username=username)
            messages.success(request, f"{username} removed from {workspace.name}.")
        else:
            role = request.POST.get("role", "")
            membership_change_role(by=request.user, workspace=workspace, username=username, role=role)
            messages.success(request, f"{username} is now {role}.")
    except DomainError as exc:
        if exc.status_code == 403:
            raise PermissionDenied(exc.detail) from None
        messages.error(request, exc.detail)
    if request.POST.get("action") == "remove" and username == request.user.get_username():
        return redirect("workspace-list")
    return redirect("workspace-members", workspace_id=workspace.id)
