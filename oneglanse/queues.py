"""Huey wiring: one Redis-backed Huey per provider queue, all on one shared Redis connection pool."""
from __future__ import annotations

import functools
import time
from collections.abc import Callable

import redis
from django.conf import settings
from huey import RedisHuey
from huey.storage import RedisStorage

from agent.providers.registry import PROVIDER_IDS

# Redis keys have no hyphens (Huey cleans the name), so the queue list of "chatgpt" is
# `huey.redis.oneglanseagentchatgpt`; the Huey name itself is the contract.
QUEUE_NAME_PREFIX = "oneglanse-agent-"


def queue_name(provider_id: str) -> str:
    return f"{QUEUE_NAME_PREFIX}{provider_id}"


class BulkRedisStorage(RedisStorage):
    """Huey's Redis storage plus a bulk push: a whole group's items in one LPUSH per queue.

    A consumer sets `dequeue_gate` (true while its queue is paused): its workers then leave the
    messages on the queue, where they wait across restarts, instead of taking them.
    """

    dequeue_gate: Callable[[], bool] | None = None
    GATED_WAIT_SECONDS = 0.5

    def dequeue(self):
        if self.dequeue_gate is not None and self.dequeue_gate():
            time.sleep(self.GATED_WAIT_SECONDS)  # Huey's worker loops straight back on a blocking storage
            return None
        return super().dequeue()

    def enqueue_many_on(self, pipeline: redis.client.Pipeline, messages: list[bytes]) -> None:
        # LPUSH + Huey's BRPOP keep FIFO order: the first message pushed is the first popped.
        if messages:
            pipeline.lpush(self.queue_key, *messages)

    # The agent never revokes a Huey task (cancelling goes through the database), so the revoke
    # check before every task and the flag delete after it would be two wasted round trips.
    def peek_many(self, keys: list) -> dict:
        return {}

    def delete_data(self, key) -> bool:
        if str(key).startswith("r:"):
            return False
        return super().delete_data(key)


@functools.cache
def redis_pool() -> redis.ConnectionPool:
    options: dict = {"health_check_interval": 30, "socket_connect_timeout": 5, "max_connections": 256}
    if not settings.REDIS_URL.startswith("unix://"):
        options["socket_keepalive"] = True  # TCP only; unix sockets take no keepalive
    return redis.ConnectionPool.from_url(settings.REDIS_URL, **options)


@functools.cache
def _client_for(pool: redis.ConnectionPool) -> redis.Redis:
    return redis.Redis(connection_pool=pool)


def redis_client() -> redis.Redis:
    """One client per pool, so registered scripts are reused rather than rebuilt on every call."""
    return _client_for(redis_pool())


@functools.cache
def huey_for(provider_id: str) -> RedisHuey:
    """The Huey instance serving one provider's queue, with the agent's tasks registered on it."""
    if provider_id not in PROVIDER_IDS:
        raise KeyError(f"no queue for unknown provider {provider_id!r}")
    huey = RedisHuey(
        name=queue_name(provider_id),
        storage_class=BulkRedisStorage,
        connection_pool=redis_pool(),
        results=False,
        immediate=False,  # djhuey would default this to DEBUG and run tasks inline.
        utc=True,
    )
    from agent.tasks import tasks_register

    tasks_register(huey, provider_id)
    return huey


def queues_reset() -> None:
    """Forget cached connections and Huey instances (after a fork, or when tests move REDIS_URL)."""
    if redis_pool.cache_info().currsize:
        redis_pool().disconnect()
    redis_pool.cache_clear()
    _client_for.cache_clear()
    huey_for.cache_clear()
