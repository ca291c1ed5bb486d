"""The audit trail of runs: a job group (a "run" to users), its providers, and one item per (provider, prompt)."""
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models

# A scheduled run that starts this long after its slot (a missed slot caught up) is "late".
SCHEDULED_RUN_LATE_AFTER = timedelta(seconds=60)


class Priority(models.TextChoices):
    """A run's priority on every provider queue: a higher one is always taken first."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class JobGroup(models.Model):
    Priority = Priority

    class Trigger(models.TextChoices):
        MANUAL = "manual"  # page, CLI, API
        SCHEDULE = "schedule"
        RERUN = "rerun"

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"  # a delayed run waiting for its run_at: nothing of it is on a queue
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
    samples = models.PositiveSmallIntegerField(default=1, help_text="How many times each (prompt, provider) is asked.")
    idempotency_key = models.CharField(
        max_length=255, blank=True, default="", help_text="The submitter's Idempotency-Key header, if any."
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL, db_index=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    run_at = models.DateTimeField(null=True, blank=True, help_text="When a delayed run is to start.")
    schedule = models.ForeignKey("Schedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="The schedule's slot this run is for.")
    late = models.BooleanField(
        default=False, help_text="A scheduled run started well after its slot (a catch-up after missed slots)."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "run"  # users see "run"; the code keeps the design card's "job group"
        verbose_name_plural = "runs"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            # Runs that finished lately (the visibility sweep looks for those without figures).
            models.Index(fields=["finished_at"], name="jobgroup_finished_at"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["triggered_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="jobgroup_unique_idempotency_key_per_user",
            ),
            # Exactly one run per (schedule, slot), however many consumers fire it at once ...
            models.UniqueConstraint(fields=["schedule", "scheduled_for"], name="jobgroup_unique_schedule_slot"),
            # ... and one per workspace and slot, however many of its schedules share that time.
            models.UniqueConstraint(fields=["workspace", "scheduled_for"], name="jobgroup_unique_workspace_slot"),
        ]

    def __str__(self) -> str:
        return str(self.id)



class Schedule(models.Model):
    """A workspace's cron schedule: each slot starts one run (trigger "schedule")."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=100, help_text='Five-field crontab, e.g. "0 6 * * 1-5".')
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA time zone the cron fields are read in.")
    is_active = models.BooleanField(default=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.LOW)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="schedules"
    )
    next_run_at = models.DateTimeField(help_text="The next slot (UTC).")
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="The slot of the last run it started.")
    last_skip_reason = models.CharField(max_length=500, blank=True, help_text="Why the last slot did not run.")
    last_skip_at = models.DateTimeField(null=True, blank=True, help_text="The slot that did not run.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace", "created_at"]
        indexes = [models.Index(fields=["is_active", "next_run_at"])]

    def __str__(self) -> str:
        return f"{self.cron} ({self.timezone})"


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
    """One (group, provider, prompt, sample): asked once, answered at most once."""

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
    sample = models.PositiveSmallIntegerField(default=1, help_text="Which of the run's N asks of this prompt (1..N).")
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
    # What other apps derived from an ok answer as it was recorded (the `answer_findings` signal),
    # written by the same UPDATE as the answer: deriving costs no write of its own per answer. Each
    # app's top-level key is its own; only that app rewrites it (visibility's re-analysis).
    findings = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "run item"
        ordering = ["group", "prompt_id", "provider", "sample"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "provider", "prompt", "sample"], name="jobitem_unique_group_provider_prompt_sample"
            )
        ]
        indexes = [
            models.Index(fields=["group", "provider", "status"]),
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["status", "-finished_at"], name="jobitem_status_finished"),  # latest failures
            # A run's answers in page order (prompt, provider, id): keyset and numbered pages, the run
            # page and the exports read a page straight off it instead of sorting the whole run.
            models.Index(fields=["group", "prompt", "provider", "id"], name="jobitem_group_answer_order"),
        ]

    def __str__(self) -> str:
        return f"{self.group_id}/{self.provider}/{self.prompt_id}/{self.sample}"


class ProviderQueue(models.Model):
    """A provider queue's operator state; the source of truth for a pause (Redis holds a mirror)."""

    provider = models.CharField(max_length=32, primary_key=True)
    paused = models.BooleanField(default=False)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paused_at = models.DateTimeField(null=True, blank=True)
    resumed_at = models.DateTimeField(null=True, blank=True, help_text="The recovery sweep's patience restarts here.")

    class Meta:
        ordering = ["provider"]
        verbose_name = "queue"

    def __str__(self) -> str:
        return f"{self.provider} ({'paused' if self.paused else 'running'})"
