"""Services that write: submit a group, run and record an item, finish providers and groups.

The API, the admin, the Huey tasks and the management commands all call these, so there is one
way to submit a group and one way to record an answer.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agent import heartbeat, progress
from agent.exceptions import Conflict, InvalidInput, QueueUnavailable
from agent.models import JobGroup, JobGroupProvider, JobItem, ProviderQueue
from agent.providers.base import Answer, ProviderError, TransientProviderError
from agent.providers.registry import PROVIDER_IDS, provider_for, unknown_provider_ids
from agent.providers.retry import retry_delay
from agent.ratelimit import rate_limit_acquire
from oneglanse.queues import huey_for, redis_client
from prompts.models import Prompt
from workspaces.models import Workspace

logger = logging.getLogger(__name__)

# A retry wait up to this long is slept in the worker; a longer one goes back on the queue
# with an ETA, so a worker thread is never parked for a long rate-limit or backoff.
INLINE_RETRY_MAX_SECONDS = 5.0
# A rate-limit slot is held this much longer than the window: a request reaches the provider a
# little after its slot is granted (a new connection, network jitter) and the provider counts
# arrivals, so without it two slots a window apart can land inside one window of the provider's.
RATE_LIMIT_SEND_MARGIN_SECONDS = 0.25


IDEMPOTENCY_WINDOW = timedelta(hours=24)
IDEMPOTENCY_KEY_MAX_LENGTH = 255


@dataclass(frozen=True)
class Submitted:
    status: str  # "queued" | "empty"
    job_group: JobGroup | None = None
    replayed: bool = False  # the same Idempotency-Key was submitted before: nothing new was created

    def as_response(self) -> dict:
        if self.job_group is None:
            return {"status": self.status}
        return {"status": self.status, "jobGroupId": str(self.job_group.id)}


def job_group_submit(
    *,
    workspace: Workspace,
    user=None,
    pairs: list[tuple[str, int]] | None = None,
    rerun_of: JobGroup | None = None,
    idempotency_key: str = "",
) -> Submitted:
    """Create a group of every active prompt x every enabled provider and put it on the queues.

    `pairs` limits the group to given (provider, prompt id) items (a re-run of failed items).
    An `idempotency_key` already used by the same user within 24 h returns that group instead.
    """
    if idempotency_key:
        if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise InvalidInput(f"The Idempotency-Key header is longer than {IDEMPOTENCY_KEY_MAX_LENGTH} characters.")
        replay = _idempotent_replay(user=user, idempotency_key=idempotency_key)
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
                                      rerun_of=rerun_of, idempotency_key=idempotency_key)
    except IntegrityError:
        # The same key was submitted concurrently and the other request won: answer with its group.
        replay = _idempotent_replay(user=user, idempotency_key=idempotency_key) if idempotency_key else None
        if replay is None:
            raise
        return replay
    if group is None:
        return Submitted(status="empty")

    if connection.in_atomic_block:
        # Inside a caller's transaction: workers must not look for rows that are not committed yet.
        transaction.on_commit(lambda: job_group_enqueue(group=group))
    else:
        job_group_enqueue(group=group)
    return Submitted(status="queued", job_group=group)


def _idempotent_replay(*, user, idempotency_key: str) -> Submitted | None:
    if user is None:
        return None
    previous = JobGroup.objects.filter(triggered_by=user, idempotency_key=idempotency_key).first()
    if previous is None:
        return None
    if previous.created_at >= timezone.now() - IDEMPOTENCY_WINDOW:
        return Submitted(status="queued", job_group=previous, replayed=True)
    # Older than the window: the key is free again; the old group keeps its audit trail.
    JobGroup.objects.filter(id=previous.id).update(idempotency_key="")
    return None


def _job_group_create(*, workspace, user, providers, pairs, rerun_of, idempotency_key) -> JobGroup | None:
    """The group, its provider rows and its items, inside the caller's transaction; None if empty."""
    if pairs is None:
        prompt_count = Prompt.objects.filter(workspace=workspace, is_active=True).count()
        wanted = []
        expected = prompt_count * len(providers)
    else:
        texts = dict(
            Prompt.objects.filter(workspace=workspace, id__in={prompt_id for _, prompt_id in pairs}).values_list("id", "text")
        )
        wanted = [(provider, prompt_id, texts[prompt_id]) for provider, prompt_id in pairs if prompt_id in texts]
        providers = [p for p in PROVIDER_IDS if any(w[0] == p for w in wanted)]
        prompt_count = len({prompt_id for _, prompt_id, _ in wanted})
        expected = len(wanted)
    if not expected:
        return None
    group = JobGroup.objects.create(
        workspace=workspace,
        triggered_by=user,
        providers=providers,
        total_prompts=prompt_count,
        expected_responses=expected,
        rerun_of=rerun_of,
        idempotency_key=idempotency_key if user is not None else "",
    )
    JobGroupProvider.objects.bulk_create([JobGroupProvider(group=group, provider=p) for p in providers])
    # next_attempt_at is when the item is due: the recovery sweep measures "overdue" from it.
    if pairs is None:
        inserted = sum(_items_insert_active_prompts(group=group, provider_id=p) for p in providers)
        if inserted != expected:
            # A prompt was switched on or off between the count and the insert (PostgreSQL's
            # READ COMMITTED allows it): the group records what was really inserted.
            group.expected_responses = inserted
            group.total_prompts = JobItem.objects.filter(group=group).values("prompt_id").distinct().count()
            group.save(update_fields=["expected_responses", "total_prompts"])
    else:
        JobItem.objects.bulk_create(
            [
                JobItem(group=group, provider=p, prompt_id=prompt_id, prompt_text=text, next_attempt_at=group.created_at)
                for p, prompt_id, text in wanted
            ],
            batch_size=1000,
        )
    return group


def _items_insert_active_prompts(*, group: JobGroup, provider_id: str) -> int:
    """One item per active prompt of the group's workspace, in one INSERT ... SELECT.

    The ORM has no INSERT ... SELECT; building thousands of model instances to bulk_create them
    cost ten times as much (BENCHMARKS.md, submit). Column values go through the fields' own
    database preparation, so UUIDs, datetimes and JSON are stored exactly as the ORM would.
    """
    item, prompt = JobItem._meta, Prompt._meta
    quote = connection.ops.quote_name
    prepared = {
        "group_id": item.get_field("group").get_db_prep_save(group.id, connection),
        "provider": provider_id,
        "status": JobItem.Status.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": item.get_field("next_attempt_at").get_db_prep_save(group.created_at, connection),
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
    items = JobItem.objects.filter(group=group).order_by("id").values_list("id", "provider")
    by_provider: dict[str, list[int]] = {p: [] for p in group.providers}
    for item_id, provider in items:
        by_provider[provider].append(item_id)
    try:
        pipeline = redis_client().pipeline(transaction=True)
        progress.progress_create_on(pipeline, group, {p: len(ids) for p, ids in by_provider.items()})
        for provider, item_ids in by_provider.items():
            job_items_push_on(pipeline, provider_id=provider, item_ids=item_ids)
        pipeline.execute()
    except redis.RedisError as exc:
        message = f"Could not enqueue the group: the queue (Redis) is unavailable ({exc.__class__.__name__})."
        logger.error("group %s: %s %s", group.id, message, exc)
        job_group_fail(group_id=group.id, error=message)
        raise QueueUnavailable(message + " Nothing was run; try again.") from exc


def job_items_push_on(pipeline: redis.client.Pipeline, *, provider_id: str, item_ids: list[int]) -> None:
    """Queue one item-run message per item on the caller's pipeline: a single LPUSH for the queue."""
    huey = huey_for(provider_id)
    messages = [huey.serialize_task(huey.item_run_task.s(item_id)) for item_id in item_ids]
    huey.storage.enqueue_many_on(pipeline, messages)


def job_group_fail(*, group_id, error: str) -> None:
    """The group itself could not run: it ends failed, with every unfinished item failed too."""
    now = timezone.now()
    with transaction.atomic():
        JobItem.objects.filter(group_id=group_id, status__in=JobItem.UNFINISHED).update(
            status=JobItem.Status.FAILED, error=error, finished_at=now
        )
        JobGroupProvider.objects.filter(group_id=group_id).exclude(
            status__in=[JobGroupProvider.Status.COMPLETED, JobGroupProvider.Status.FAILED]
        ).update(status=JobGroupProvider.Status.FAILED, error=error, finished_at=now)
        group = JobGroup.objects.select_for_update().get(id=group_id)
        if group.status in JobGroup.UNFINISHED:
            group.status = JobGroup.Status.FAILED
            group.error = error
            group.finished_at = now
            group.progress = progress.progress_from_database(group)
            group.save(update_fields=["status", "error", "finished_at", "progress"])


def item_run(*, item_id: int, provider_id: str) -> None:
    """Ask one item's provider and record the result (the body of the queue task).

    Only a queued item starts, so a redelivered or duplicated message for an item that is
    running or finished is dropped: one provider call at a time, one answer per item.
    """
    row = (
        JobItem.objects.filter(id=item_id)
        .values("group_id", "provider", "prompt_text", "status", "group__status")
        .first()
    )
    if row is None:
        logger.warning("item %s no longer exists; dropped", item_id)
        return
    if row["provider"] != provider_id:
        logger.error("item %s belongs to %s, not to the %s queue; dropped", item_id, row["provider"], provider_id)
        return
    if row["status"] != JobItem.Status.QUEUED:
        logger.info("item %s is %s; duplicate delivery dropped", item_id, row["status"])
        return
    group_id = row["group_id"]
    if row["group__status"] == JobGroup.Status.CANCELLED:
        # Put back on the queue (retry, rate limit) before the group was cancelled: it never starts.
        if JobItem.objects.filter(id=item_id, status=JobItem.Status.QUEUED).update(
            status=JobItem.Status.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
        ):
            _progress_count(group_id=group_id, item_id=item_id, provider_id=provider_id, status=JobItem.Status.CANCELLED)
        return
    now = timezone.now()
    # The pause check rides on the claim that runs anyway: no extra round trip, and exact (the
    # database is the pause's source of truth) whatever the age of this consumer's paused view.
    paused = ProviderQueue.objects.filter(provider=provider_id, paused=True)
    started = JobItem.objects.filter(~Exists(paused), id=item_id, status=JobItem.Status.QUEUED).update(
        status=JobItem.Status.RUNNING, attempts=F("attempts") + 1, heartbeat_at=now, next_attempt_at=None,
        started_at=Coalesce("started_at", Value(now)),
    )
    if not started:
        if paused.exists():
            _item_hold_paused(item_id=item_id, provider_id=provider_id)
        return  # another delivery started it, or it was cancelled, a moment ago
    _provider_started(group_id=group_id, provider_id=provider_id)
    provider = provider_for(provider_id)
    while True:
        # The slot is taken right before the request (first try and every retry alike), after
        # the database writes, so the provider sees requests spaced as the limit granted them.
        wait = _rate_limit_wait(provider_id)
        if wait > 0:
            # Over the shared limit: back on the queue until a slot frees up; no attempt is spent.
            item_retry_later(item_id=item_id, provider_id=provider_id, delay=wait + random.uniform(0, 0.25),
                             reason=f"{provider_id}: waiting for the rate limit", attempt_spent=False)
            return
        try:
            with heartbeat.beating(item_id):
                answer = provider.ask(row["prompt_text"])
        except TransientProviderError as exc:
            attempts = JobItem.objects.filter(id=item_id).values_list("attempts", flat=True).first() or 0
            if attempts >= settings.AGENT_MAX_ATTEMPTS:
                answer_record(item_id=item_id, group_id=group_id, provider_id=provider_id, backend=provider.backend,
                              error=f"{exc} (gave up after {attempts} attempts)")
                return
            delay = retry_delay(attempt=attempts, retry_after=exc.retry_after)
            if delay > INLINE_RETRY_MAX_SECONDS:
                item_retry_later(item_id=item_id, provider_id=provider_id, delay=delay, reason=str(exc))
                return
            logger.info("item %s: %s; retrying in %.1f s", item_id, exc, delay)
            with heartbeat.beating(item_id):  # a waiting item is not a lost one
                time.sleep(delay)
            if not JobItem.objects.filter(id=item_id, status=JobItem.Status.RUNNING).update(
                attempts=F("attempts") + 1, heartbeat_at=timezone.now()
            ):
                return
            continue
        except ProviderError as exc:
            answer_record(item_id=item_id, group_id=group_id, provider_id=provider_id, backend=provider.backend, error=str(exc))
            return
        except Exception as exc:  # a bug in an adapter must still end the item, visibly
            logger.exception("item %s: unexpected error from %s", item_id, provider_id)
            answer_record(item_id=item_id, group_id=group_id, provider_id=provider_id, backend=provider.backend,
                          error=f"{provider_id}: internal error ({exc.__class__.__name__}: {exc})")
            return
        answer_record(item_id=item_id, group_id=group_id, provider_id=provider_id, backend=provider.backend, answer=answer)
        return


def _item_hold_paused(*, item_id: int, provider_id: str) -> None:
    """A consumer took an item of a queue paused a moment ago: the item goes back on its queue,
    unstarted, and this process stops taking that queue's items before its next refresh."""
    from agent.queue_ops import paused_cache

    paused_cache.mark_paused(provider_id)
    pipeline = redis_client().pipeline(transaction=False)
    job_items_push_on(pipeline, provider_id=provider_id, item_ids=[item_id])
    pipeline.execute()
    logger.info("item %s: the %s queue is paused; back on the queue unstarted", item_id, provider_id)


def _rate_limit_wait(provider_id: str) -> float:
    """0.0 when a request may go now (it is counted), else seconds until the shared limit has room."""
    limit = rate_limit_of(provider_id)
    if not limit:
        return 0.0
    return rate_limit_acquire(redis_client(), provider=provider_id, limit=limit,
                              window_seconds=settings.AGENT_RATE_LIMIT_WINDOW_SECONDS + RATE_LIMIT_SEND_MARGIN_SECONDS)


def rate_limit_of(provider_id: str) -> int | None:
    """AGENT_RATE_LIMIT_<PROVIDER> requests per AGENT_RATE_LIMIT_WINDOW_SECONDS, or None when unlimited."""
    return settings.AGENT_RATE_LIMITS.get(provider_id) or None


def item_retry_later(
    *, item_id: int, provider_id: str, delay: float, reason: str, from_status: str = JobItem.Status.RUNNING,
    attempt_spent: bool = True,
) -> None:
    """Put an item back on its queue to run after `delay` seconds (backoff or rate limit).

    `next_attempt_at` tells the recovery sweep the item is waiting, not lost, until then.
    `attempt_spent=False` gives back the attempt counted when the item started (it never asked).
    """
    when = timezone.now() + timedelta(seconds=delay)
    changes = dict(status=JobItem.Status.QUEUED, next_attempt_at=when, error=reason[:1000])
    if not attempt_spent:
        changes["attempts"] = F("attempts") - 1
    if not JobItem.objects.filter(id=item_id, status=from_status).update(**changes):
        return
    huey_for(provider_id).item_run_task.schedule(args=(item_id,), delay=delay)
    logger.info("item %s: %s; back on the queue in %.1f s", item_id, reason, delay)


# (group, provider) pairs this process has already reported as started: the provider leaves
# "pending" once, so each process pays that Redis round trip once per pair, not once per item.
_STARTED_SEEN: set[tuple[str, str]] = set()
_STARTED_SEEN_MAX = 10_000


def _provider_started(*, group_id, provider_id: str) -> None:
    key = (str(group_id), provider_id)
    if key in _STARTED_SEEN:
        return
    if len(_STARTED_SEEN) >= _STARTED_SEEN_MAX:
        _STARTED_SEEN.clear()
    _STARTED_SEEN.add(key)
    if progress.progress_item_started(group_id=group_id, provider=provider_id):
        now = timezone.now()
        JobGroupProvider.objects.filter(group_id=group_id, provider=provider_id, status=JobGroupProvider.Status.PENDING).update(
            status=JobGroupProvider.Status.PROCESSING, started_at=now
        )
        JobGroup.objects.filter(id=group_id, status=JobGroup.Status.QUEUED).update(status=JobGroup.Status.RUNNING)


def answer_record(
    *, item_id: int, group_id, provider_id: str, backend: str, answer: Answer | None = None, error: str = ""
) -> bool:
    """Record an item's result once. Returns False when it was already recorded (a redelivery)."""
    now = timezone.now()
    if answer is not None:
        status = JobItem.Status.OK
        fields = dict(
            text=answer.text, sources=answer.sources, usage=answer.usage, latency_ms=answer.latency_ms,
            model=answer.model, error="",
        )
    else:
        status = JobItem.Status.FAILED
        fields = dict(error=error[:4000])
    changed = JobItem.objects.filter(id=item_id, status__in=JobItem.UNFINISHED).update(
        status=status, backend=backend, finished_at=now, heartbeat_at=now, **fields
    )
    if not changed:
        logger.info("item %s was already recorded; this result is dropped", item_id)
        return False
    _progress_count(group_id=group_id, item_id=item_id, provider_id=provider_id, status=status, error=error,
                    latency_ms=answer.latency_ms if answer is not None else None)
    return True


def _progress_count(
    *, group_id, item_id: int, provider_id: str, status: str, error: str = "", latency_ms: int | None = None
) -> None:
    counted = progress.progress_item_finished(
        group_id=group_id, item_id=item_id, provider=provider_id, status=status, error=error, latency_ms=latency_ms
    )
    if counted.provider_done:
        job_group_provider_settle(group_id=group_id, provider_id=provider_id)
    if counted.group_done:
        job_group_finalize(group_id=group_id)


def job_group_provider_settle(*, group_id, provider_id: str) -> None:
    """Write a provider's final status once all its items are finished (forward only)."""
    counts = dict(
        JobItem.objects.filter(group_id=group_id, provider=provider_id).values_list("status").annotate(n=Count("id"))
    )
    if any(counts.get(s) for s in JobItem.UNFINISHED):
        return
    failed = counts.get(JobItem.Status.FAILED, 0)
    if counts.get(JobItem.Status.OK, 0) == 0 and failed:
        error = (
            JobItem.objects.filter(group_id=group_id, provider=provider_id, status=JobItem.Status.FAILED)
            .order_by("-finished_at").values_list("error", flat=True).first()
        )
        status, error = JobGroupProvider.Status.FAILED, f"all {failed} items failed; last error: {error}"
    else:
        status, error = JobGroupProvider.Status.COMPLETED, ""
    now = timezone.now()
    JobGroupProvider.objects.filter(group_id=group_id, provider=provider_id).exclude(
        status__in=[JobGroupProvider.Status.COMPLETED, JobGroupProvider.Status.FAILED]
    ).update(status=status, error=error, finished_at=now)
    JobGroupProvider.objects.filter(group_id=group_id, provider=provider_id, started_at__isnull=True).update(started_at=now)


def job_group_finalize(*, group_id) -> bool:
    """Close a group whose items are all finished: final provider rows, status, progress mirror.

    Idempotent and race-safe (a conditional update); returns True only for the call that closed it.
    """
    if JobItem.objects.filter(group_id=group_id, status__in=JobItem.UNFINISHED).exists():
        return False
    for provider_id in JobGroupProvider.objects.filter(group_id=group_id).exclude(
        status__in=[JobGroupProvider.Status.COMPLETED, JobGroupProvider.Status.FAILED]
    ).values_list("provider", flat=True):
        job_group_provider_settle(group_id=group_id, provider_id=provider_id)
    group = JobGroup.objects.get(id=group_id)
    if group.status not in JobGroup.UNFINISHED and group.status != JobGroup.Status.CANCELLED:
        return False
    final = progress.progress_from_database(group)
    try:
        live = progress.progress_read_live(group_id)
    except redis.RedisError:
        live = None
    if live is not None:
        # Keep the live updateId so a poller's last seen value never goes backwards.
        final["updateId"] = max(final["updateId"], live["updateId"])
    closing = Q(status__in=JobGroup.UNFINISHED) | Q(status=JobGroup.Status.CANCELLED, finished_at__isnull=True)
    closed = JobGroup.objects.filter(closing, id=group_id).update(
        status=JobGroup.Status.CANCELLED if group.status == JobGroup.Status.CANCELLED else JobGroup.Status.COMPLETED,
        progress=final,
        finished_at=timezone.now(),
    )
    if closed:
        logger.info("group %s finished: %s", group_id, final["stats"])
    return bool(closed)


def job_group_rerun(*, group: JobGroup, user=None, only_failed: bool = False) -> Submitted:
    """A new group for the same workspace, linked to `group`.

    A full re-run asks the workspace's active prompts and enabled providers as they are now;
    `only_failed` asks again exactly the original's items that have no answer (failed or cancelled).
    """
    if not only_failed:
        return job_group_submit(workspace=group.workspace, user=user, rerun_of=group)
    pairs = list(
        JobItem.objects.filter(group=group, status__in=[JobItem.Status.FAILED, JobItem.Status.CANCELLED])
        .order_by("prompt_id", "provider")
        .values_list("provider", "prompt_id")
    )
    if not pairs:
        return Submitted(status="empty")
    return job_group_submit(workspace=group.workspace, user=user, pairs=pairs, rerun_of=group)


@dataclass(frozen=True)
class Cancelled:
    job_group: JobGroup
    cancelled_items: int
    running_items: int


def job_group_cancel(*, group: JobGroup) -> Cancelled:
    """Stop a group: items not started end cancelled, running items finish, answers are kept."""
    with transaction.atomic():
        locked = JobGroup.objects.select_for_update().get(id=group.id)
        if locked.status not in JobGroup.UNFINISHED:
            raise Conflict(f"This group is already {locked.status}; there is nothing left to cancel.")
        # Locked rows (PostgreSQL) or the IMMEDIATE write lock (SQLite) keep workers from
        # starting these items between reading and cancelling them.
        queued = list(
            JobItem.objects.select_for_update().filter(group=locked, status=JobItem.Status.QUEUED).values_list("id", flat=True)
        )
        cancelled = JobItem.objects.filter(id__in=queued, status=JobItem.Status.QUEUED).update(
            status=JobItem.Status.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
        )
        locked.status = JobGroup.Status.CANCELLED
        locked.save(update_fields=["status"])
    running = JobItem.objects.filter(group=locked, status=JobItem.Status.RUNNING).count()
    try:
        # The rebuild merges every finished row (the cancelled ones included) idempotently.
        progress.progress_rebuild(locked.id)
    except redis.RedisError as exc:
        logger.warning("group %s cancelled; progress will be rebuilt later (Redis: %s)", locked.id, exc)
    for provider_id in locked.providers:
        job_group_provider_settle(group_id=locked.id, provider_id=provider_id)
    job_group_finalize(group_id=locked.id)
    locked.refresh_from_db()
    logger.info("group %s cancelled: %d items cancelled, %d running items will finish", locked.id, cancelled, running)
    return Cancelled(job_group=locked, cancelled_items=cancelled, running_items=running)
