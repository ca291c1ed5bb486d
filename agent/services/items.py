"""Running one item: claim it, try its provider, decide whether to retry, record the result once.

A result a provider gave is never thrown away: when the database cannot take it (down,
restarting, locked), the worker holds it in Redis and keeps retrying until the database is back
(`item_result_record`); a worker that dies meanwhile leaves it held, and the recovery sweep or
the next worker to pick the item up records it instead of asking the provider again.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.db.models import Exists, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agent import heartbeat, progress
from agent.connections import redis_client
from agent.held_results import ItemResult, held_result_put, held_results_drop, held_results_get
from agent.models import JobGroup, JobGroupProvider, JobItem, ProviderQueue
from agent.providers.base import Answer, Provider, ProviderError, TransientProviderError
from agent.providers.registry import provider_for
from agent.providers.retry import retry_delay
from agent.providers.simulated import SimulatedProvider
from agent.ratelimit import rate_limit_wait
from agent.services.closing import item_count_and_close
from agent.services.item_statements import item_first_claim, item_update_from, json_text
from agent.signals import answer_findings, findings_collect
from agent.tasks import QueuedItem, item_messages_push_on, item_schedule
from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS, database_outage_wait_out

logger = logging.getLogger(__name__)

# A retry wait up to this long is slept in the worker; a longer one goes back on the queue
# with an ETA, so a worker thread is never parked for a long rate-limit or backoff.
INLINE_RETRY_MAX_SECONDS = 5.0


@dataclass(frozen=True)
class Claimed:
    """An item this worker moved from queued to running; `item.group_id` is the row's."""

    item: QueuedItem
    prompt_text: str
    attempts: int = 1  # counting this one
    sample: int = 1
    workspace_id: str = ""


@dataclass(frozen=True)
class Attempt:
    """One try of a provider: an answer, a final error, a transient error, or a rate-limit wait."""

    answer: Answer | None = None
    error: str = ""
    transient: TransientProviderError | None = None
    rate_limited_for: float = 0.0


@dataclass(frozen=True)
class RetryDecision:
    give_up: bool
    delay: float = 0.0
    inline: bool = False  # sleep `delay` in this worker rather than going back on the queue


def item_run(*, item: QueuedItem) -> None:
    """Ask one item's provider and record the result (the body of the queue task).

    Only a queued item starts, so a redelivered or duplicated message for an item that is
    running or finished is dropped: one provider call at a time, one answer per item.
    """
    claimed = item_claim(item=item)
    if claimed is None:
        return
    item = claimed.item
    began, attempts = time.monotonic(), claimed.attempts
    _provider_started(group_id=item.group_id, provider_id=item.provider_id)
    provider = provider_for(item.provider_id)
    while True:
        attempt = item_try(claimed=claimed, provider=provider)
        if attempt.rate_limited_for:
            # Over the shared limit: back on the queue until a slot frees up; no attempt is spent.
            item_retry_later(item=item, delay=attempt.rate_limited_for + random.uniform(0, 0.25),
                             reason=f"{item.provider_id}: waiting for the rate limit", attempt_spent=False)
            return
        if attempt.transient is None:
            if answer_record(item=item, backend=provider.backend, answer=attempt.answer, error=attempt.error):
                _outcome_log(item, answered=attempt.answer is not None, attempts=attempts, began=began, error=attempt.error)
            return
        attempts = JobItem.objects.filter(id=item.item_id).values_list("attempts", flat=True).first() or 0
        decision = retry_decide(attempts=attempts, max_attempts=settings.AGENT_MAX_ATTEMPTS,
                                retry_after=attempt.transient.retry_after)
        if decision.give_up:
            error = f"{attempt.transient} (gave up after {attempts} attempts)"
            if answer_record(item=item, backend=provider.backend, error=error):
                _outcome_log(item, answered=False, attempts=attempts, began=began, error=error)
            return
        if not decision.inline:
            item_retry_later(item=item, delay=decision.delay, reason=str(attempt.transient))
            return
        logger.info("item %s %s run %s: attempt %d failed (%s); retrying in %.1f s",
                    item.item_id, item.provider_id, item.group_id[:8], attempts, attempt.transient, decision.delay)
        with heartbeat.beating(item.item_id):  # a waiting item is not a lost one
            time.sleep(decision.delay)
        if not JobItem.objects.filter(id=item.item_id, status=JobItem.Status.RUNNING).update(
            attempts=F("attempts") + 1, heartbeat_at=timezone.now()
        ):
            return  # recovered or recorded elsewhere meanwhile
        attempts += 1


def _outcome_log(item: QueuedItem, *, answered: bool, attempts: int, began: float, error: str) -> None:
    """One line per finished item, saying what happened (the consumer's own per-task lines are off)."""
    seconds = time.monotonic() - began
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if answered:
        logger.info("item %s %s run %s: answered in %.2f s (%s)",
                    item.item_id, item.provider_id, item.group_id[:8], seconds, tries)
    else:
        logger.warning("item %s %s run %s: failed in %.2f s after %s: %s",
                       item.item_id, item.provider_id, item.group_id[:8], seconds, tries, error[:300])


def item_claim(*, item: QueuedItem) -> Claimed | None:
    """Move a queued item to running; None when this message must not run it (logged why)."""
    if item.group_id:
        # The common case in one statement; anything else (a duplicate, a retry, a paused queue, a
        # delayed or cancelled run, a foreign message) takes the checks below, which say why.
        first = item_first_claim(item_id=item.item_id, group_id=item.group_id, provider_id=item.provider_id,
                                 now=timezone.now())
        if first is not None:
            return Claimed(
                item=QueuedItem(item_id=item.item_id, group_id=item.group_id, provider_id=item.provider_id,
                                priority=first.priority),
                prompt_text=first.prompt_text, sample=first.sample, workspace_id=first.workspace_id,
            )
    row = (
        JobItem.objects.filter(id=item.item_id)
        .values(
            "group_id", "provider", "prompt_text", "sample", "status", "group__status", "group__priority", "attempts",
            "group__workspace_id",
        )
        .first()
    )
    if row is None:
        logger.warning("item %s no longer exists; dropped", item.item_id)
        return None
    if row["provider"] != item.provider_id:
        logger.error("item %s belongs to %s, not to the %s queue; dropped", item.item_id, row["provider"], item.provider_id)
        return None
    group_id = str(row["group_id"])
    if item.group_id and item.group_id != group_id:
        logger.error("item %s belongs to group %s, not to %s; dropped", item.item_id, group_id, item.group_id)
        return None
    if row["status"] != JobItem.Status.QUEUED:
        logger.info("item %s is %s; duplicate delivery dropped", item.item_id, row["status"])
        return None
    if row["group__status"] == JobGroup.Status.SCHEDULED:
        logger.info("item %s belongs to a delayed run not yet due; dropped (it is queued when due)", item.item_id)
        return None
    item = QueuedItem(item_id=item.item_id, group_id=group_id, provider_id=item.provider_id,
                      priority=row["group__priority"])
    if row["group__status"] == JobGroup.Status.CANCELLED:
        # Put back on the queue (retry, rate limit) before the group was cancelled: it never starts.
        if JobItem.objects.filter(id=item.item_id, status=JobItem.Status.QUEUED).update(
            status=JobItem.Status.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
        ):
            item_count_and_close(group_id=group_id, item_id=item.item_id, provider_id=item.provider_id,
                                 status=JobItem.Status.CANCELLED)
        return None
    if row["attempts"] and _held_result_record(item):
        return None
    now = timezone.now()
    # The pause check rides on the claim that runs anyway: no extra round trip, and exact (the
    # database is the pause's source of truth) whatever the age of this consumer's paused view.
    paused = ProviderQueue.objects.filter(provider=item.provider_id, paused=True)
    started = JobItem.objects.filter(~Exists(paused), id=item.item_id, status=JobItem.Status.QUEUED).update(
        status=JobItem.Status.RUNNING, attempts=F("attempts") + 1, heartbeat_at=now, next_attempt_at=None,
        started_at=Coalesce("started_at", Value(now)),
    )
    if not started:
        if paused.exists():
            _item_hold_paused(item=item)
        return None  # another delivery started it, or it was cancelled, a moment ago
    return Claimed(
        item=item, prompt_text=row["prompt_text"], attempts=row["attempts"] + 1, sample=row["sample"],
        workspace_id=str(row["group__workspace_id"]),
    )


def _item_hold_paused(*, item: QueuedItem) -> None:
    """A consumer took an item of a queue paused a moment ago: the item goes back on its queue,
    unstarted, and this process stops taking that queue's items before its next refresh."""
    from agent.queue_ops import paused_cache

    paused_cache.mark_paused(item.provider_id)
    pipeline = redis_client().pipeline(transaction=False)
    item_messages_push_on(pipeline, provider_id=item.provider_id, items=[item])
    pipeline.execute()
    logger.info("item %s: the %s queue is paused; back on the queue unstarted", item.item_id, item.provider_id)


def _held_result_record(item: QueuedItem) -> bool:
    """An item that ran before may have a result its worker received but could not record
    (a database outage, then the worker died): record that one instead of asking again.
    Only items with attempts behind them look, so a first run costs no Redis round trip."""
    try:
        held = held_results_get([item.item_id]).get(item.item_id)
    except redis.RedisError as exc:
        logger.warning("item %s: could not look for a held result (%s); running it", item.item_id, exc)
        return False
    if held is None:
        return False
    item_result_record(result=held)
    held_results_drop([item.item_id])
    logger.warning("item %s: its held result was recorded once the database was back; not asked again", item.item_id)
    return True


def item_try(*, claimed: Claimed, provider: Provider) -> Attempt:
    """One try: take a rate-limit slot, then ask the provider while the item heartbeats."""
    item = claimed.item
    # The slot is taken right before the request (first try and every retry alike), after
    # the database writes, so the provider sees requests spaced as the limit granted them.
    wait = rate_limit_wait(item.provider_id)
    if wait > 0:
        return Attempt(rate_limited_for=wait)
    try:
        with heartbeat.beating(item.item_id):
            if isinstance(provider, SimulatedProvider):
                # Offline answers name the workspace's brands and differ per item and sample.
                return Attempt(answer=provider.ask(
                    claimed.prompt_text, item_id=item.item_id, sample=claimed.sample, workspace_id=claimed.workspace_id
                ))
            return Attempt(answer=provider.ask(claimed.prompt_text))
    except TransientProviderError as exc:
        return Attempt(transient=exc)
    except ProviderError as exc:
        return Attempt(error=str(exc))
    except Exception as exc:  # a bug in an adapter must still end the item, visibly
        logger.exception("item %s: unexpected error from %s", item.item_id, item.provider_id)
        return Attempt(error=f"{item.provider_id}: internal error ({exc.__class__.__name__}: {exc})")


def retry_decide(*, attempts: int, max_attempts: int, retry_after: float | None) -> RetryDecision:
    """After a transient failure of attempt `attempts`: give up, wait here, or go back on the queue."""
    if attempts >= max_attempts:
        return RetryDecision(give_up=True)
    delay = retry_delay(attempt=attempts, retry_after=retry_after)
    return RetryDecision(give_up=False, delay=delay, inline=delay <= INLINE_RETRY_MAX_SECONDS)


def item_retry_later(
    *, item: QueuedItem, delay: float, reason: str, from_status: str = JobItem.Status.RUNNING,
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
    if not JobItem.objects.filter(id=item.item_id, status=from_status).update(**changes):
        return
    item_schedule(item, delay=delay)
    logger.info("item %s: %s; back on the queue in %.1f s", item.item_id, reason, delay)


# (group, provider) pairs this process has already reported as started: the provider leaves
# "pending" once, so each process pays that Redis round trip once per pair, not once per item.
_STARTED_SEEN: set[tuple[str, str]] = set()
_STARTED_SEEN_MAX = 10_000


def _provider_started(*, group_id: str, provider_id: str) -> None:
    key = (group_id, provider_id)
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


def answer_record(*, item: QueuedItem, backend: str, answer: Answer | None = None, error: str = "") -> bool:
    """Record an item's result once. Returns False when it was already recorded (a redelivery)."""
    return item_result_record(result=ItemResult(item=item, backend=backend, answer=answer, error=error))


def item_result_record(*, result: ItemResult, wait_out_outage: bool = True) -> bool:
    """Record a result once, waiting out a database outage (holding the result in Redis meanwhile)
    unless `wait_out_outage` is False. Returns False when it was already recorded."""
    item = result.item
    findings = None
    if result.answer is not None:
        findings = findings_collect(answer_findings, group_id=item.group_id, provider=item.provider_id,
                                    text=result.answer.text, sources=result.answer.sources)
    try:
        changed = _item_result_write(result, findings)
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        if not wait_out_outage:
            raise
        changed = _item_result_write_through_outage(result, findings, exc)
    if not changed:
        logger.info("item %s was already recorded; this result is dropped", item.item_id)
        return False
    status = JobItem.Status.OK if result.answer is not None else JobItem.Status.FAILED
    item_count_and_close(group_id=item.group_id, item_id=item.item_id, provider_id=item.provider_id, status=status,
                         error=result.error, latency_ms=result.answer.latency_ms if result.answer is not None else None)
    return True


def _item_result_write(result: ItemResult, findings: dict | None = None) -> int:
    """The one conditional UPDATE that records a result (only from queued or running), with the
    `findings` other apps derived from its answer."""
    now = timezone.now()
    answer = result.answer
    if answer is not None:
        status = JobItem.Status.OK
        fields = dict(
            text=answer.text, sources=answer.sources, usage=answer.usage, latency_ms=answer.latency_ms,
            model=answer.model, error="", findings=None if findings is None else json_text(findings),
        )
    else:
        status = JobItem.Status.FAILED
        fields = dict(error=result.error[:4000])
    return item_update_from(item_id=result.item.item_id, statuses=JobItem.UNFINISHED,
                            status=status, backend=result.backend, finished_at=now, heartbeat_at=now, **fields)


def _item_result_write_through_outage(result: ItemResult, findings: dict | None, error: Exception) -> int:
    """Keep retrying the write until the database is back; the result is held in Redis meanwhile,
    so it outlives this worker. Raises after AGENT_DB_OUTAGE_SECONDS, leaving it held for the sweep."""
    item_id = result.item.item_id
    started = time.monotonic()
    held = held_result_put(result)

    def hold_again(_error: Exception) -> None:
        nonlocal held
        held = held or held_result_put(result)

    with heartbeat.beating(item_id):  # so the sweep, once it can run again, sees a live item
        try:
            changed = database_outage_wait_out(
                lambda: _item_result_write(result, findings), patience=settings.AGENT_DB_OUTAGE_SECONDS,
                what=f"item {item_id}: recording its result", first_error=error, on_failure=hold_again,
            )
        except DATABASE_UNAVAILABLE_ERRORS:
            logger.error("item %s: the database stayed away %.0f s; its result is %s", item_id,
                         time.monotonic() - started,
                         "held in Redis for the recovery sweep" if held else "lost (Redis was away too)")
            raise
    if held:
        held_results_drop([item_id])
    logger.warning("item %s: result recorded once the database was back (%.1f s later)", item_id,
                   time.monotonic() - started)
    return changed
