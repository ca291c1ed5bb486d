"""Reads of prompts, scoped to the caller's workspaces."""
from agent.exceptions import NotFound
from prompts.models import Prompt


def prompt_get_for_user(*, user, prompt_id: str) -> Prompt:
    if not (str(prompt_id).isascii() and str(prompt_id).isdigit()):  # "²".isdigit() is True, int("²") fails
        raise NotFound("Prompt not found.")
    prompt = Prompt.objects.filter(id=int(prompt_id), workspace__memberships__user=user).first()
    if prompt is None:
        raise NotFound("Prompt not found.")
    return prompt
