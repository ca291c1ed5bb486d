"""Queue operations: pause and resume a provider queue, and every queue's figures at a glance.

A pause lives in the database (`ProviderQueue`, the source of truth: it outlives consumer
restarts and a Redis that comes back empty) and is mirrored in one Redis hash for the hot
paths. Nothing reads either per answer:
- a consumer's view of the mirror comes back with every answer it records (the FINISH script
  returns it), and while its queue is paused its heartbeat thread re-reads it every
  PAUSE_CACHE_SECONDS to notice the resume (agent/consumer_registry.py); it stops taking items
  of a paused queue; the claim of an item (one conditional UPDATE that
  runs anyway) also refuses a paused provider, so no item starts once the pause is committed,
  whatever the age of a consumer's view;
- web processes keep the mirror for PAUSE_CACHE_SECONDS (one HGETALL per process per period).
The recovery sweep rewrites the mirror from the database, so a lost mirror heals within a sweep.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import redis
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from agent import metrics
from agent.connections import redis_client
from agent.models import JobItem, ProviderQueue
from agent.queues import huey_for, queue_name
from oneglanse.exceptions import NotFound
from oneglanse.provider_ids import PROVIDER_IDS

logger = logging.getLogger(__name__)

PAUSED_KEY = "oneglanse:queues:paused"  # provider -> username of who paused it
# Always present in a complete mirror, so "no field" means "mirror lost", not "nothing paused".
SYNCED_FIELD = "~synced"
PAUSE_CACHE_SECONDS = 2.0


class PausedQueuesCache:
    """This process's view of the paused queues (provider -> who paused it)."""

    def __init__(self) -> None:
        self._paused: dict[str, str] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def load_mirror(self, raw: dict[bytes, bytes]) -> dict[str, str]:
        """Take a freshly read mirror; an empty one (lost) is rebuilt from the database first."""
        if not raw:
            paused = queue_pause_mirror_sync()
        else:
            paused = {k.decode(): v.decode() for k, v in raw.items() if k.decode() != SYNCED_FIELD}
        with self._lock:
            self._paused, self._loaded_at = paused, time.monotonic()
        return paused

    def load_names(self, fields: list[bytes]) -> None:
        """Take the mirror's field names that the FINISH script returns with every answer; an
        empty list (mirror lost) is left to the next beat, which rebuilds it from the database."""
        if not fields:
            return
        names = {f.decode() for f in fields} - {SYNCED_FIELD}
        with self._lock:
            if names != set(self._paused):
                self._paused = {name: self._paused.get(name, "") for name in names}
            self._loaded_at = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self._loaded_at

    def is_paused(self, provider_id: str) -> bool:
        return provider_id in self._paused

    def mark_paused(self, provider_id: str, by: str = "") -> None:
        """The claim found the provider paused before the next refresh: stop taking its items now."""
        with self._lock:
            self._paused = {**self._paused, provider_id: by}

    def current(self, max_age: float = PAUSE_CACHE_SECONDS) -> dict[str, str]:
        """The paused queues, re-read from Redis when the view is older than `max_age` seconds."""
        if time.monotonic() - self._loaded_at > max_age:
            try:
                return self.load_mirror(redis_client().hgetall(PAUSED_KEY))
            except redis.RedisError as exc:
                logger.warning("paused queues read from the database: Redis unavailable (%s)", exc)
                return {q.provider: _username(q) for q in ProviderQueue.objects.filter(paused=True).select_related("paused_by")}
        return dict(self._paused)


paused_cache = PausedQueuesCache()


def _username(queue: ProviderQueue) -> str:
    return queue.paused_by.username if queue.paused_by_id else ""


def _provider_checked(provider_id: str) -> str:
    if provider_id not in PROVIDER_IDS:
        raise NotFound(f"No queue for provider {provider_id!r}; the queues are: {', '.join(PROVIDER_IDS)}.")
    return provider_id


def queue_pause_mirror_sync() -> dict[str, str]:
    """Rewrite the Redis mirror from the database (the truth); returns the paused queues."""
    paused = {q.provider: _username(q) for q in ProviderQueue.objects.filter(paused=True).select_related("paused_by")}
    pipeline = redis_client().pipeline(transaction=True)
    pipeline.delete(PAUSED_KEY)
    pipeline.hset(PAUSED_KEY, mapping={SYNCED_FIELD: "1", **paused})
    pipeline.execute()
    return paused


def _mirror_write(provider_id: str, paused_by: str | None) -> None:
    try:
        if not redis_client().exists(PAUSED_KEY):
            queue_pause_mirror_sync()
        elif paused_by is None:
            redis_client().hdel(PAUSED_KEY, provider_id)
        else:
            redis_client().hset(PAUSED_KEY, provider_id, paused_by)
    except redis.RedisError as exc:
        # The database holds the pause and every claim checks it; the sweep repairs the mirror.
        logger.warning("queue %s: pause mirror not updated (Redis: %s); the recovery sweep will", provider_id, exc)


def queue_pause(*, provider_id: str, user=None) -> ProviderQueue:
    """Stop every consumer on every host from starting items of this provider; running ones finish."""
    _provider_checked(provider_id)
    with transaction.atomic():
        queue, _ = ProviderQueue.objects.select_for_update().get_or_create(provider=provider_id)
        if not queue.paused:
            queue.paused, queue.paused_by, queue.paused_at = True, user, timezone.now()
            queue.save(update_fields=["paused", "paused_by", "paused_at"])
            logger.warning("queue %s paused by %s", provider_id, getattr(user, "username", "the system"))
    _mirror_write(provider_id, _username(queue))
    return queue


def queue_resume(*, provider_id: str, user=None) -> ProviderQueue:
    """Let the consumers take this provider's items again, oldest first as they were queued."""
    _provider_checked(provider_id)
    with transaction.atomic():
        queue, _ = ProviderQueue.objects.select_for_update().get_or_create(provider=provider_id)
        if queue.paused:
            # resumed_at restarts the recovery sweep's patience: a long pause is not a lost queue.
            queue.paused, queue.paused_by, queue.paused_at, queue.resumed_at = False, None, None, timezone.now()
            queue.save(update_fields=["paused", "paused_by", "paused_at", "resumed_at"])
            logger.warning("queue %s resumed by %s", provider_id, getattr(user, "username", "the system"))
    _mirror_write(provider_id, None)
    return queue


def queues_state() -> dict[str, ProviderQueue]:
    """Every provider's queue row as the database has it (rows created on first use)."""
    rows = {q.provider: q for q in ProviderQueue.objects.select_related("paused_by")}
    return {p: rows.get(p) or ProviderQueue(provider=p) for p in PROVIDER_IDS}


def queues_paused_cached() -> dict[str, str]:
    """Paused queues -> who paused them, at most PAUSE_CACHE_SECONDS old (pages, status API, CLI)."""
    return paused_cache.current()


@dataclass(frozen=True)
class LastHour:
    ok: int
    failed: int
    p50_ms: int | None
    p95_ms: int | None


@dataclass(frozen=True)
class QueueOverview:
    provider: str
    queue: str
    paused: bool
    paused_by: str | None
    paused_at: datetime | None
    waiting: int
    scheduled: int
    running: int
    consumers: int
    workers: int
    hosts: list[str]
    last_hour: LastHour

    def as_dict(self) -> dict:
        """The queue object of GET /api/queues/ (DESIGN.md contract)."""
        return {
            "provider": self.provider, "queue": self.queue, "paused": self.paused, "paused_by": self.paused_by,
            "paused_at": self.paused_at.isoformat() if self.paused_at else None,
            "waiting": self.waiting, "scheduled": self.scheduled, "running": self.running,
            "consumers": self.consumers, "workers": self.workers, "hosts": self.hosts,
            "last_hour": {"ok": self.last_hour.ok, "failed": self.last_hour.failed,
                          "p50_ms": self.last_hour.p50_ms, "p95_ms": self.last_hour.p95_ms},
        }


@dataclass(frozen=True)
class QueueFigures:
    """What every reader of the queues needs, read in one Redis pipeline and two small queries."""

    states: dict[str, ProviderQueue]
    waiting: dict[str, int]
    scheduled: dict[str, int]
    running: dict[str, int]
    minutes: list[int]
    per_minute: list[dict[str, metrics.MinuteCounts]]
    totals: dict[str, metrics.ProviderTotals]
    consumers: list


def queue_figures(*, minutes: int = 60) -> QueueFigures:
    from agent.consumer_registry import consumers_live

    client = redis_client()
    pipeline = client.pipeline(transaction=False)
    for provider_id in PROVIDER_IDS:
        storage = huey_for(provider_id).storage
        pipeline.zcard(storage.queue_key)
        pipeline.zcard(storage.schedule_key)
    epoch_minutes = metrics.minutes_on(pipeline, minutes=minutes)
    pipeline.hgetall(metrics.TOTALS_KEY)
    replies = pipeline.execute()
    queue_sizes, minute_raws, totals_raw = replies[: 2 * len(PROVIDER_IDS)], replies[2 * len(PROVIDER_IDS):-1], replies[-1]
    # Running items are few and the (status, heartbeat_at) index finds them: no table scan.
    running = dict(
        JobItem.objects.filter(status=JobItem.Status.RUNNING).order_by().values_list("provider").annotate(n=Count("id"))
    )
    return QueueFigures(
        states=queues_state(),
        waiting=dict(zip(PROVIDER_IDS, queue_sizes[0::2], strict=True)),
        scheduled=dict(zip(PROVIDER_IDS, queue_sizes[1::2], strict=True)),
        running={p: running.get(p, 0) for p in PROVIDER_IDS},
        minutes=epoch_minutes,
        per_minute=metrics.minutes_parse(minute_raws, PROVIDER_IDS),
        totals=metrics._parse_totals(totals_raw, PROVIDER_IDS),
        consumers=consumers_live(client),
    )


def queue_overview_list(figures: QueueFigures | None = None) -> list[QueueOverview]:
    """One overview per provider queue: backlog, pause, consumers on every host, the last hour."""
    figures = figures or queue_figures()
    overviews = []
    for provider_id in PROVIDER_IDS:
        state = figures.states[provider_id]
        buckets: dict[str, int] = {}
        ok = failed = 0
        for minute in figures.per_minute:
            counts = minute[provider_id]
            ok, failed = ok + counts.ok, failed + counts.failed
            for le, n in counts.buckets.items():
                buckets[le] = buckets.get(le, 0) + n
        mine = [c for c in figures.consumers if c.provider == provider_id]
        overviews.append(QueueOverview(
            provider=provider_id, queue=queue_name(provider_id), paused=state.paused,
            paused_by=_username(state) or None if state.paused else None,
            paused_at=state.paused_at if state.paused else None,
            waiting=figures.waiting[provider_id], scheduled=figures.scheduled[provider_id],
            running=figures.running[provider_id], consumers=len(mine), workers=sum(c.workers for c in mine),
            hosts=sorted({c.host for c in mine}),
            last_hour=LastHour(ok=ok, failed=failed, p50_ms=metrics.quantile_ms(buckets, 0.5),
                               p95_ms=metrics.quantile_ms(buckets, 0.95)),
        ))
    return overviews


def queue_overview_get(provider_id: str) -> QueueOverview:
    _provider_checked(provider_id)
    return next(o for o in queue_overview_list() if o.provider == provider_id)


def queue_throughput(figures: QueueFigures) -> dict:
    """Finished items per provider per minute over the figures' window, for the ops page's chart."""
    return {
        "minutes": [m * 60 for m in figures.minutes],  # unix seconds of each minute's start
        "providers": {
            p: {"ok": [m[p].ok for m in figures.per_minute], "failed": [m[p].failed for m in figures.per_minute]}
            for p in PROVIDER_IDS
        },
    }
