"""Live consumers: every `run_huey` process heartbeats a small record in Redis, seen from every host.

A record lives AGENT_CONSUMER_TTL seconds (default 60) and is refreshed three times per TTL, so a
consumer that dies without a word (kill -9, a lost host) drops out within the TTL; one that stops
gracefully removes its record at once. The paused-queue view that gates this process's dequeue is
refreshed by every answer it records (the FINISH script returns it), and by this thread every
PAUSE_CACHE_SECONDS while the queue is paused (to notice the resume): never a round trip per answer.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass

import redis
from django.conf import settings
from django.utils import timezone

import oneglanse
from agent import queue_ops
from agent.connections import redis_client
from agent.queues import queue_name
from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS, database_connection_drop

logger = logging.getLogger(__name__)

CONSUMERS_KEY = "oneglanse:consumers"  # a set of consumer ids; a member whose record expired is dropped on read
RECORD_PREFIX = "oneglanse:consumer:"


@dataclass(frozen=True)
class ConsumerRecord:
    id: str
    provider: str
    queue: str
    host: str
    pid: int
    workers: int
    worker_type: str
    version: str
    started_at: str  # ISO 8601


def beat_interval() -> float:
    """Three heartbeats per TTL."""
    return max(0.2, settings.AGENT_CONSUMER_TTL / 3)


def tick_interval() -> float:
    """How often the beat thread wakes: the paused view must never be older than PAUSE_CACHE_SECONDS."""
    return max(0.1, min(queue_ops.PAUSE_CACHE_SECONDS / 2, beat_interval()))


def dequeue_gate(provider_id: str):
    """True while the queue is paused, as the beat last saw it. A worker process (`-k process`)
    has no beat thread of its own, so its view refreshes itself when it grows older than that."""
    max_age = 3 * queue_ops.PAUSE_CACHE_SECONDS
    return lambda: provider_id in queue_ops.paused_cache.current(max_age=max_age)


class ConsumerBeat(threading.Thread):
    """Heartbeats this consumer's record and refreshes the process's paused-queue view."""

    def __init__(self, *, provider_id: str, workers: int, worker_type: str) -> None:
        super().__init__(name="consumer-beat", daemon=True)
        host = socket.gethostname()
        self.record = ConsumerRecord(
            id=f"{host}:{os.getpid()}:{provider_id}:{uuid.uuid4().hex[:6]}",
            provider=provider_id, queue=queue_name(provider_id), host=host, pid=os.getpid(), workers=workers,
            worker_type=worker_type, version=oneglanse.__version__, started_at=timezone.now().isoformat(),
        )
        self.stop_event = threading.Event()
        self.last_record = float("-inf")

    @property
    def key(self) -> str:
        return RECORD_PREFIX + self.record.id

    def beat_once(self, *, force: bool = True) -> None:
        """Refresh the record when due, and the paused view when no answer refreshed it lately.

        While its queue runs, a consumer needs no beat to learn of a pause: the answers it records
        bring the mirror back (the FINISH script returns it), and the claim of an item refuses a
        paused provider and closes the gate at once. Only a closed gate needs this thread, to
        notice the resume. So a running consumer's beats are the heartbeat alone: one round trip
        per TTL/3, never one per answer.
        """
        now = time.monotonic()
        record_due = force or now - self.last_record >= beat_interval()
        view_due = force or (
            queue_ops.paused_cache.is_paused(self.record.provider)
            and queue_ops.paused_cache.age() >= queue_ops.PAUSE_CACHE_SECONDS - tick_interval()
        )
        if not (record_due or view_due):
            return
        pipeline = redis_client().pipeline(transaction=False)
        if record_due:
            ttl_ms = max(100, int(settings.AGENT_CONSUMER_TTL * 1000))
            pipeline.set(self.key, json.dumps(asdict(self.record)), px=ttl_ms)
            pipeline.sadd(CONSUMERS_KEY, self.record.id)
        if view_due:
            pipeline.hgetall(queue_ops.PAUSED_KEY)
        replies = pipeline.execute()
        if record_due:
            self.last_record = now
        if view_due:
            queue_ops.paused_cache.load_mirror(replies[-1])

    def run(self) -> None:
        while True:
            try:
                self.beat_once(force=False)
            except redis.RedisError as exc:
                logger.warning("consumer heartbeat skipped: Redis unavailable (%s)", exc)
            except DATABASE_UNAVAILABLE_ERRORS as exc:  # the mirror rebuild reads the database
                logger.warning("consumer heartbeat: the database is unavailable (%s); the next beat tries again", exc)
                database_connection_drop()  # a broken connection would fail every later beat
            except Exception:
                logger.exception("consumer heartbeat failed; the next beat tries again")
            if self.stop_event.wait(tick_interval()):
                return

    def stop(self) -> None:
        """Leave the list at once (graceful shutdown) rather than after the TTL."""
        self.stop_event.set()
        try:
            pipeline = redis_client().pipeline(transaction=False)
            pipeline.delete(self.key)
            pipeline.srem(CONSUMERS_KEY, self.record.id)
            pipeline.execute()
        except redis.RedisError:
            pass


def consumer_beat_start(*, provider_id: str, workers: int, worker_type: str) -> ConsumerBeat:
    beat = ConsumerBeat(provider_id=provider_id, workers=workers, worker_type=worker_type)
    beat.beat_once()  # seen (and gated by the pause) before the first item is taken
    beat.start()
    return beat


def consumers_live(client: redis.Redis | None = None) -> list[ConsumerRecord]:
    """Every consumer on every host whose heartbeat is younger than AGENT_CONSUMER_TTL."""
    client = client or redis_client()
    ids = sorted(member.decode() for member in client.smembers(CONSUMERS_KEY))
    if not ids:
        return []
    raws = client.mget([RECORD_PREFIX + consumer_id for consumer_id in ids])
    live, gone = [], []
    for consumer_id, raw in zip(ids, raws, strict=True):
        if raw is None:
            gone.append(consumer_id)
            continue
        try:
            live.append(ConsumerRecord(**json.loads(raw)))
        except (TypeError, ValueError):
            gone.append(consumer_id)
    if gone:
        client.srem(CONSUMERS_KEY, *gone)
    return live
