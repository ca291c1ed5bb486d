"""Reads of prompts, scoped to the caller's workspaces."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from oneglanse.exceptions import NotFound
from prompts.models import Prompt

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from workspaces.models import Workspace


def prompts_of_workspace(*, workspace: Workspace) -> QuerySet[Prompt]:
    return Prompt.objects.filter(workspace=workspace)


def prompt_get_for_user(*, user: User, prompt_id: str) -> Prompt:
    if not (str(prompt_id).isascii() and str(prompt_id).isdigit()):  # "²".isdigit() is True, int("²") fails
        raise NotFound("Prompt not found.")
    prompt = Prompt.objects.filter(id=int(prompt_id), workspace__memberships__user=user).first()
    if prompt is None:
        raise NotFound("Prompt not found.")
    return prompt
