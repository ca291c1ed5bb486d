"""Submitting a run: idempotency, the group and its items in one transaction, then the queues."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import redis
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agent import progress
from agent.connections import redis_client
from agent.models import JobGroup, JobGroupProvider, JobItem, Priority, Schedule
from agent.services.closing import job_group_fail
from agent.tasks import group_messages_push_on
from oneglanse.exceptions import IdempotencyKeyReused, InvalidInput, QueueUnavailable
from oneglanse.provider_ids import PROVIDER_IDS, unknown_provider_ids
from prompts.models import Prompt
from workspaces.models import Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
IDEMPOTENCY_KEY_MAX_LENGTH = 255
PROMPT_IDS_PER_QUERY = 1000
# A delayed run starts at most this far ahead.
RUN_AT_MAX_AHEAD = timedelta(days=366)


@dataclass(frozen=True)
class Submitted:
    status: str  # "queued" | "scheduled" | "empty"
    job_group: JobGroup | None = None
    replayed: bool = False  # the same Idempotency-Key was submitted before: nothing new was created

    def as_response(self) -> dict:
        if self.job_group is None:
            return {"status": self.status}
        body = {"status": self.status, "jobGroupId": str(self.job_group.id)}
        if self.job_group.run_at:
            body["runAt"] = self.job_group.run_at.isoformat()
        return body


def job_group_submit(
    *,
    workspace: Workspace,
    user: User | None = None,
    pairs: list[tuple] | None = None,
    rerun_of: JobGroup | None = None,
    idempotency_key: str = "",
    priority: str = Priority.NORMAL,
    run_at: datetime | None = None,
    trigger: str | None = None,
    schedule: Schedule | None = None,
    scheduled_for: datetime | None = None,
    late: bool = False,
    enqueue: bool = True,
) -> Submitted:
    """Create a group of every active prompt x every enabled provider x the workspace's samples per run
    (a re-run: the original's) and put it on the queues.

    `pairs` limits the group to given (provider, prompt id[, sample]) items (a re-run of failed items).
    An `idempotency_key` already used by the same user within 24 h returns that group instead.
    `enqueue=False` leaves the queues to the caller (`job_groups_enqueue` after its commit).
    `priority` orders its items on every provider queue. A `run_at` in the future makes a
    delayed run: status "scheduled", nothing queued until the schedule tick releases it; a
    `run_at` that has passed runs now. A schedule's run carries `schedule` and its slot.
    """
    if priority not in Priority.values:
        raise InvalidInput(f"Priority is one of {', '.join(Priority.values)}.", field="priority")
    if run_at is not None:
        if run_at.tzinfo is None:
            raise InvalidInput("Give run_at with a time zone offset, e.g. 2026-01-05T06:00:00Z.", field="run_at")
        if run_at <= timezone.now():
            run_at = None  # documented: a time already passed means "now"
        elif run_at > timezone.now() + RUN_AT_MAX_AHEAD:
            raise InvalidInput("run_at is at most a year ahead.", field="run_at")
    if trigger is None:
        trigger = JobGroup.Trigger.RERUN if rerun_of is not None else JobGroup.Trigger.MANUAL
    if idempotency_key:
        if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise InvalidInput(f"The Idempotency-Key header is longer than {IDEMPOTENCY_KEY_MAX_LENGTH} characters.")
        replay = _idempotent_replay(user=user, workspace=workspace, idempotency_key=idempotency_key)
        if replay:
            return replay
    providers: list[str] = []
    if pairs is None:
        providers = list(workspace.enabled_providers or [])
        if not providers:
            raise InvalidInput(f"Workspace {workspace.name!r} has no enabled providers; enable at least one.")
        unknown = unknown_provider_ids(providers)
        if unknown:
            raise InvalidInput(f"Workspace {workspace.name!r} enables unknown providers: {', '.join(unknown)}.")

    try:
        with transaction.atomic():
            group = _job_group_create(workspace=workspace, user=user, providers=providers, pairs=pairs,
                                      rerun_of=rerun_of, idempotency_key=idempotency_key,
                                      run=dict(priority=priority, run_at=run_at, trigger=trigger,
                                               schedule=schedule, scheduled_for=scheduled_for, late=late))
    except IntegrityError:
        # The same key was submitted concurrently and the other request won: answer with its group.
        replay = _idempotent_replay(user=user, workspace=workspace, idempotency_key=idempotency_key) if idempotency_key else None
        if replay is None:
            raise
        return replay
    if group is None:
        return Submitted(status="empty")
    if group.status == JobGroup.Status.SCHEDULED:
        logger.info("run %s of %s waits until %s", group.id, workspace.name, group.run_at)
        return Submitted(status="scheduled", job_group=group)

    if not enqueue:
        return Submitted(status="queued", job_group=group)
    if connection.in_atomic_block:
        # Inside a caller's transaction: workers must not look for rows that are not committed yet.
        transaction.on_commit(lambda: job_group_enqueue(group=group))
    else:
        job_group_enqueue(group=group)
    return Submitted(status="queued", job_group=group)


def _idempotent_replay(*, user: User | None, workspace: Workspace, idempotency_key: str) -> Submitted | None:
    if user is None:
        return None
    previous = JobGroup.objects.filter(triggered_by=user, idempotency_key=idempotency_key).first()
    if previous is None:
        return None
    if previous.created_at >= timezone.now() - IDEMPOTENCY_WINDOW:
        if previous.workspace_id != workspace.id:
            # Never answer with another workspace's run (nor say which): the key is the caller's mistake.
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a run of another workspace; send a new key."
            )
        status = "scheduled" if previous.status == JobGroup.Status.SCHEDULED else "queued"
        return Submitted(status=status, job_group=previous, replayed=True)
    # Older than the window: the key is free again; the old group keeps its audit trail.
    JobGroup.objects.filter(id=previous.id).update(idempotency_key="")
    return None


def _job_group_create(
    *, workspace: Workspace, user: User | None, providers: list[str], pairs: list[tuple] | None,
    rerun_of: JobGroup | None, idempotency_key: str, run: dict,
) -> JobGroup | None:
    """The group, its provider rows and its items, inside the caller's transaction; None if empty."""
    # A re-run asks as many samples as the run it repeats, so the two compare like for like.
    samples = rerun_of.samples if rerun_of is not None else workspace.samples_per_run
    samples = max(1, samples or 1)
    if pairs is None:
        prompt_count = Prompt.objects.filter(workspace=workspace, is_active=True).count()
        wanted = []
        expected = prompt_count * len(providers) * samples
    else:
        # In slices: a list of ids is one bound variable each, and SQLite's limit may be 32,766.
        prompt_ids = sorted({pair[1] for pair in pairs})
        texts: dict[int, str] = {}
        for start in range(0, len(prompt_ids), PROMPT_IDS_PER_QUERY):
            texts.update(Prompt.objects.filter(workspace=workspace, id__in=prompt_ids[start:start + PROMPT_IDS_PER_QUERY])
                         .values_list("id", "text"))
        wanted = [
            (pair[0], pair[1], pair[2] if len(pair) > 2 else 1, texts[pair[1]]) for pair in pairs if pair[1] in texts
        ]
        providers = [p for p in PROVIDER_IDS if any(w[0] == p for w in wanted)]
        prompt_count = len({w[1] for w in wanted})
        expected = len(wanted)
    if not expected:
        return None
    group = JobGroup.objects.create(
        workspace=workspace,
        triggered_by=user,
        providers=providers,
        total_prompts=prompt_count,
        expected_responses=expected,
        samples=samples,
        rerun_of=rerun_of,
        idempotency_key=idempotency_key if user is not None else "",
        status=JobGroup.Status.SCHEDULED if run["run_at"] else JobGroup.Status.QUEUED,
        **run,
    )
    # An item is due when its run starts: the recovery sweep measures "overdue" from it.
    due = group.run_at or group.created_at
    JobGroupProvider.objects.bulk_create([JobGroupProvider(group=group, provider=p) for p in providers])
    if pairs is None:
        inserted = sum(
            _items_insert_active_prompts(group=group, provider_id=p, sample=n)
            for p in providers
            for n in range(1, samples + 1)
        )
        if inserted != expected:
            # A prompt was switched on or off between the count and the insert (PostgreSQL's
            # READ COMMITTED allows it): the group records what was really inserted.
            group.expected_responses = inserted
            group.total_prompts = JobItem.objects.filter(group=group).values("prompt_id").distinct().count()
            group.save(update_fields=["expected_responses", "total_prompts"])
    else:
        JobItem.objects.bulk_create(
            [
                JobItem(
                    group=group, provider=p, prompt_id=prompt_id, sample=sample, prompt_text=text,
                    next_attempt_at=due,
                )
                for p, prompt_id, sample, text in wanted
            ],
            batch_size=1000,
        )
    return group


def _items_insert_active_prompts(*, group: JobGroup, provider_id: str, sample: int = 1) -> int:
    """One item per active prompt of the group's workspace for one provider and sample, in one INSERT ... SELECT.

    The ORM has no INSERT ... SELECT; building thousands of model instances to bulk_create them
    cost ten times as much (BENCHMARKS.md, submit). Column values go through the fields' own
    database preparation, so UUIDs, datetimes and JSON are stored exactly as the ORM would.
    """
    item, prompt = JobItem._meta, Prompt._meta
    quote = connection.ops.quote_name
    prepared = {
        "group_id": item.get_field("group").get_db_prep_save(group.id, connection),
        "provider": provider_id,
        "sample": sample,
        "status": JobItem.Status.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": item.get_field("next_attempt_at").get_db_prep_save(group.run_at or group.created_at, connection),
        "backend": "", "model": "", "text": "", "error": "",
        "sources": item.get_field("sources").get_db_prep_save([], connection),
        "usage": item.get_field("usage").get_db_prep_save({}, connection),
    }
    columns = [*prepared, "prompt_id", "prompt_text"]
    sql = (
        f"INSERT INTO {quote(item.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"SELECT {', '.join(['%s'] * len(prepared))}, p.{quote('id')}, p.{quote('text')} "
        f"FROM {quote(prompt.db_table)} p WHERE p.{quote('workspace_id')} = %s AND p.{quote('is_active')} "
        f"ORDER BY p.{quote('id')}"
    )
    workspace_id = prompt.get_field("workspace").get_db_prep_value(group.workspace_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*prepared.values(), workspace_id])
        return cursor.rowcount


def job_group_enqueue(*, group: JobGroup) -> None:
    """Create the progress object and push every item, in one Redis round trip (MULTI/EXEC).

    If Redis refuses, nothing was pushed (the transaction is all or nothing): the group is
    marked failed with the error and QueueUnavailable (503) is raised, never left pending.
    """
    job_groups_enqueue(groups=[group])


def job_groups_enqueue(*, groups: list[JobGroup]) -> None:
    """`job_group_enqueue` for several groups in one round trip (the runs a schedule tick starts)."""
    runs: dict[str, list[tuple[str, str, list[int]]]] = {}
    counts: dict[str, dict[str, int]] = {}
    for group in groups:
        by_provider: dict[str, list[int]] = {p: [] for p in group.providers}
        # Ids alone, without model instances or the group's UUID per row: reading them back was
        # a third of a 120,000-item submit.
        for provider, item_id in JobItem.objects.filter(group=group).order_by("id").values_list("provider", "id"):
            by_provider[provider].append(item_id)
        counts[str(group.id)] = {p: len(ids) for p, ids in by_provider.items()}
        for provider, item_ids in by_provider.items():
            runs.setdefault(provider, []).append((str(group.id), group.priority, item_ids))
    try:
        pipeline = redis_client().pipeline(transaction=True)
        for group in groups:
            progress.progress_create_on(pipeline, group, counts[str(group.id)])
        for provider, provider_runs in runs.items():
            group_messages_push_on(pipeline, provider_id=provider, groups=provider_runs)
        pipeline.execute()
    except redis.RedisError as exc:
        message = f"Could not enqueue the run: the queue (Redis) is unavailable ({exc.__class__.__name__})."
        for group in groups:
            logger.error("group %s: %s %s", group.id, message, exc)
            job_group_fail(group_id=group.id, error=message)
        raise QueueUnavailable(message + " Nothing was run; try again.") from exc


def job_group_rerun(*, group: JobGroup, user: User | None = None, only_failed: bool = False) -> Submitted:
    """A new group for the same workspace, linked to `group`.

    A full re-run asks the workspace's active prompts and enabled providers as they are now;
    `only_failed` asks again exactly the original's items that have no answer (failed or cancelled),
    each with its sample number. Either way the re-run asks as many samples as the original.
    """
    if not only_failed:
        return job_group_submit(workspace=group.workspace, user=user, rerun_of=group, priority=group.priority)
    pairs = list(
        JobItem.objects.filter(group=group, status__in=[JobItem.Status.FAILED, JobItem.Status.CANCELLED])
        .order_by("prompt_id", "provider", "sample")
        .values_list("provider", "prompt_id", "sample")
    )
    if not pairs:
        return Submitted(status="empty")
    return job_group_submit(workspace=group.workspace, user=user, pairs=pairs, rerun_of=group, priority=group.priority)
