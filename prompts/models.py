"""Prompts: the questions a workspace asks every enabled provider."""
from django.db import models

PROMPT_TEXT_MAX_LENGTH = 4000


class Prompt(models.Model):
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField(max_length=PROMPT_TEXT_MAX_LENGTH)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["workspace", "is_active"])]

    def __str__(self) -> str:
        return self.text[:80]
