"""Services that write prompts."""
from __future__ import annotations

from oneglanse.exceptions import InvalidInput
from prompts.models import Prompt
from workspaces.models import Workspace

MAX_ACTIVE_PROMPTS_PER_WORKSPACE = 1000


def prompt_create(*, workspace: Workspace, text: str) -> Prompt:
    if Prompt.objects.filter(workspace=workspace, is_active=True).count() >= MAX_ACTIVE_PROMPTS_PER_WORKSPACE:
        raise InvalidInput(
            f"A workspace can have at most {MAX_ACTIVE_PROMPTS_PER_WORKSPACE} active prompts; deactivate some first.",
            field="text",
        )
    return Prompt.objects.create(workspace=workspace, text=text)


def prompt_update(*, prompt: Prompt, is_active: bool) -> Prompt:
    if is_active and not prompt.is_active:
        if Prompt.objects.filter(workspace_id=prompt.workspace_id, is_active=True).count() >= MAX_ACTIVE_PROMPTS_PER_WORKSPACE:
            raise InvalidInput(
                f"A workspace can have at most {MAX_ACTIVE_PROMPTS_PER_WORKSPACE} active prompts.", field="is_active"
            )
    prompt.is_active = is_active
    prompt.save(update_fields=["is_active"])
    return prompt
