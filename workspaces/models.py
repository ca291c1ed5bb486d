"""Workspaces (a brand's set of prompts and enabled providers) and who may use them."""
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

MIN_SAMPLES_PER_RUN = 1
MAX_SAMPLES_PER_RUN = 10


class Workspace(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    enabled_providers = models.JSONField(default=list, help_text="Provider ids, e.g. [\"chatgpt\", \"gemini\"].")
    samples_per_run = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(MIN_SAMPLES_PER_RUN), MaxValueValidator(MAX_SAMPLES_PER_RUN)],
        help_text="How many times each run asks every (prompt, provider), 1 to 10: rates come with error bars.",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="workspaces")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "created_at"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "workspace"], name="membership_unique_user_workspace")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"
