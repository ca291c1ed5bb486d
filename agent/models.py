"""The audit trail of runs: a job group (a "run" to users), its providers, and one item per (provider, prompt)."""
import uuid

from django.conf import settings
from django.db import models


class JobGroup(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"  # every item finished, even if some failed
        CANCELLED = "cancelled"
        FAILED = "failed"  # the group itself could not run (e.g. enqueueing failed)

    UNFINISHED = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.PROTECT, related_name="job_groups")
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="job_groups"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    providers = models.JSONField(default=list, help_text="Snapshot of the provider ids this group runs.")
    total_prompts = models.PositiveIntegerField(default=0)
    expected_responses = models.PositiveIntegerField(default=0)
    progress = models.JSONField(null=True, blank=True, help_text="Final mirror of the progress object.")
    error = models.TextField(blank=True)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    idempotency_key = models.CharField(
        max_length=255, blank=True, default="", help_text="The submitter's Idempotency-Key header, if any."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "run"  # users see "run"; the code keeps the design card's "job group"
        verbose_name_plural = "runs"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["triggered_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="jobgroup_unique_idempotency_key_per_user",
            )
        ]

    def __str__(self) -> str:
        return str(self.id)


class JobGroupProvider(models.Model):
    """One provider's share of a group; its status only moves forward."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"

    group = models.ForeignKey(JobGroup, on_delete=models.CASCADE, related_name="group_providers")
    provider = models.CharField(max_length=32)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "run provider"
        ordering = ["group", "provider"]
        constraints = [models.UniqueConstraint(fields=["group", "provider"], name="jobgroupprovider_unique")]

    def __str__(self) -> str:
        return f"{self.group_id}/{self.provider}"


class JobItem(models.Model):
    """One (group, provider, prompt): asked once, answered at most once."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        OK = "ok"
        FAILED = "failed"
        CANCELLED = "cancelled"

    UNFINISHED = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.OK, Status.FAILED, Status.CANCELLED)

    class Backend(models.TextChoices):
        SIMULATED = "simulated"
        LIVE = "live"

    group = models.ForeignKey(JobGroup, on_delete=models.CASCADE, related_name="items")
    provider = models.CharField(max_length=32)
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.PROTECT, related_name="items")
    prompt_text = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, blank=True)
    model = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True)
    sources = models.JSONField(default=list, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = "run item"
        ordering = ["group", "prompt_id", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["group", "provider", "prompt"], name="jobitem_unique_group_provider_prompt")
        ]
        indexes = [models.Index(fields=["group", "provider", "status"]), models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.group_id}/{self.provider}/{self.prompt_id}"
