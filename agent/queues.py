"""One Redis-backed Huey per provider queue, on the shared connection pool; no task is known here.

Tasks are registered on these instances by `agent.tasks`, the only module that builds messages.
"""
from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable

import redis
from huey import RedisHuey
from huey.storage import PriorityRedisStorage

from agent.connections import connections_reset, redis_pool
from oneglanse.provider_ids import PROVIDER_IDS

# Redis keys have no hyphens (Huey cleans the name), so the queue of "chatgpt" is
# `huey.redis.oneglanseagentchatgpt`; the Huey name itself is the contract.
QUEUE_NAME_PREFIX = "oneglanse-agent-"

# Huey's priority: a higher number is taken first. Keyed by the run priority names.
QUEUE_PRIORITY = {"high": 20, "normal": 10, "low": 0}

# The 8-byte big-endian microsecond stamp Huey's priority storage prefixes every message with.
STAMP = struct.Struct(">Q")


def queue_name(provider_id: str) -> str:
    return f"{QUEUE_NAME_PREFIX}{provider_id}"


class BulkRedisStorage(PriorityRedisStorage):
    """Huey's priority storage on Redis plus a bulk push: a whole group's items in one ZADD per queue.

    The queue is a sorted set scored by minus the priority, so BZPOPMIN takes the highest priority
    first; within a priority, members sort by the 8-byte microsecond stamp Huey prefixes them
    with, so equal priorities keep submission order.

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

    def enqueue_many_on(self, pipeline: redis.client.Pipeline, messages: list[bytes], priority: int = 0) -> None:
        if messages:
            # The same stamp as Huey's own enqueue, one microsecond apart within the batch.
            stamp, pack, score = int(time.time() * 1e6), STAMP.pack, -priority
            pipeline.zadd(self.queue_key, {pack(stamp + n) + message: score for n, message in enumerate(messages)})

    def queue_upgrade(self) -> int:
        """Move messages of a release that queued them in a Redis list onto the sorted set (at normal priority)."""
        client = self.conn
        if client.type(self.queue_key) != b"list":
            return 0
        moved_key = f"{self.queue_key}.upgrading"
        if not client.renamenx(self.queue_key, moved_key):
            return 0
        messages = list(reversed(client.lrange(moved_key, 0, -1)))  # LPUSH put the oldest last
        stamp = int(time.time() * 1e6)
        if messages:
            client.zadd(self.queue_key, {
                struct.pack(">Q", stamp + n) + m: -QUEUE_PRIORITY["normal"] for n, m in enumerate(messages)
            })
        client.delete(moved_key)
        return len(messages)

    # The agent never revokes a Huey task (cancelling goes through the database), so the revoke
    # check before every task and the flag delete after it would be two wasted round trips.
    def peek_many(self, keys: list) -> dict:
        return {}

    def delete_data(self, key) -> bool:
        if str(key).startswith("r:"):
            return False
        return super().delete_data(key)


@functools.cache
def huey_for(provider_id: str) -> RedisHuey:
    """The Huey instance of one provider's queue (tasks are registered on it by `agent.tasks`)."""
    if provider_id not in PROVIDER_IDS:
        raise KeyError(f"no queue for unknown provider {provider_id!r}")
    return RedisHuey(
        name=queue_name(provider_id),
        storage_class=BulkRedisStorage,
        connection_pool=redis_pool(),
        results=False,
        immediate=False,  # djhuey would default this to DEBUG and run tasks inline.
        utc=True,
    )


def queue_key(provider_id: str) -> str:
    """The Redis sorted set that holds a provider's waiting messages."""
    return huey_for(provider_id).storage.queue_key


def queue_length(provider_id: str) -> int:
    """How many messages wait on a provider's queue."""
    return huey_for(provider_id).storage.queue_size()


def queue_messages(provider_id: str) -> list[bytes]:
    """The waiting messages of a provider's queue, next to be taken first (for tests and tools)."""
    return huey_for(provider_id).storage.enqueued_items()


def queues_reset() -> None:
    """Forget cached connections and Huey instances (after a fork, or when tests move REDIS_URL)."""
    connections_reset()
    huey_for.cache_clear()
