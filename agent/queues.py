"""One Redis-backed Huey per provider queue, on the shared connection pool; no task is known here.

Tasks are registered on these instances by `agent.tasks`, the only module that builds messages.
"""
from __future__ import annotations

import functools

import redis
from huey import RedisHuey
from huey.storage import RedisStorage

from agent.connections import connections_reset, redis_pool
from oneglanse.provider_ids import PROVIDER_IDS

# Redis keys have no hyphens (Huey cleans the name), so the queue list of "chatgpt" is
# `huey.redis.oneglanseagentchatgpt`; the Huey name itself is the contract.
QUEUE_NAME_PREFIX = "oneglanse-agent-"


def queue_name(provider_id: str) -> str:
    return f"{QUEUE_NAME_PREFIX}{provider_id}"


class BulkRedisStorage(RedisStorage):
    """Huey's Redis storage plus a bulk push: a whole group's items in one LPUSH per queue."""

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
    """The Redis list that holds a provider's waiting messages."""
    return huey_for(provider_id).storage.queue_key


def queues_reset() -> None:
    """Forget cached connections and Huey instances (after a fork, or when tests move REDIS_URL)."""
    connections_reset()
    huey_for.cache_clear()
