"""Services that write prompts; this module owns the active-prompt cap of a workspace."""
from __future__ import annotations

from django.db import transaction

from oneglanse.exceptions import InvalidInput
from prompts.models import Prompt
from workspaces.models import Workspace

MAX_ACTIVE_PROMPTS_PER_WORKSPACE = 1000


def prompt_active_cap_check(*, workspace_id, adding: int = 1, field: str = "text") -> None:
    """InvalidInput when `adding` more active prompts would pass the cap.

    Alone it only reads (forms call it for an early message); the services call it under
    `_workspace_write_lock`, which is what makes the cap hold against parallel writers.
    """
    active = Prompt.objects.filter(workspace_id=workspace_id, is_active=True).count()
    if active + adding > MAX_ACTIVE_PROMPTS_PER_WORKSPACE:
        raise InvalidInput(
            f"A workspace can have at most {MAX_ACTIVE_PROMPTS_PER_WORKSPACE} active prompts; deactivate some first.",
            field=field,
        )


def _workspace_write_lock(workspace_id) -> None:
    """Serialise writers of one workspace's prompts until the caller's transaction ends.

    PostgreSQL: a row lock on the workspace (other workspaces are not held up). SQLite has no
    row locks (select_for_update is a no-op there), but every transaction starts IMMEDIATE
    (see settings), so it already holds the database's write lock from its first statement.
    """
    Workspace.objects.select_for_update().filter(id=workspace_id).values_list("id", flat=True).first()


def prompt_create(*, workspace: Workspace, text: str) -> Prompt:
    with transaction.atomic():
        _workspace_write_lock(workspace.id)
        prompt_active_cap_check(workspace_id=workspace.id)
        return Prompt.objects.create(workspace=workspace, text=text)


def prompt_update(*, prompt: Prompt, is_active: bool) -> Prompt:
    with transaction.atomic():
        if is_active:
            _workspace_write_lock(prompt.workspace_id)
            # Read again under the lock: another writer may have switched it on meanwhile.
            was_active = Prompt.objects.filter(id=prompt.id, is_active=True).exists()
            if not was_active:
                prompt_active_cap_check(workspace_id=prompt.workspace_id, field="is_active")
        prompt.is_active = is_active
        prompt.save(update_fields=["is_active"])
    return prompt
