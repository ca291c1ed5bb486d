"""Queue tasks and their messages: the only place that registers tasks and builds Huey messages.

A message carries a `QueuedItem`; the task is a thin adapter that checks it and calls the
service (imported inside the task: services import this module to enqueue).
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import close_old_connections
from huey import RedisHuey
from huey.api import TaskWrapper

from agent.queues import QUEUE_PRIORITY, huey_for
from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS, database_outage_wait_out

logger = logging.getLogger(__name__)

ITEM_RUN_TASK_NAME = "agent.item_run"


@dataclass(frozen=True)
class QueuedItem:
    """What a queue message says: run this item of this group on this provider's queue.

    `group_id` is "" only in messages queued by an older release, which sent the item id alone.
    """

    item_id: int
    group_id: str
    provider_id: str
    # The run's priority name; an older release's message has none and reads the class default.
    priority: str = "normal"

    @classmethod
    def of(cls, item, priority: str = "normal") -> QueuedItem:
        """The message value of a JobItem row."""
        return cls(item_id=item.id, group_id=str(item.group_id), provider_id=item.provider, priority=priority)


_register_lock = threading.Lock()


class TaskLinesFilter(logging.Filter):
    """Drops Huey's own per-task lines ("Executing …", "… 5 retries executed in 0.5s"), which read
    as if every item was retried five times: the item service logs what happened instead
    (answered, failed or retried, attempts, time)."""

    HIDDEN = ("Executing %s", "%s executed in %0.3fs")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.HIDDEN


def item_run_task(provider_id: str) -> TaskWrapper:
    """The item task registered on the provider's Huey (registered on first use, once per instance)."""
    huey = huey_for(provider_id)
    task = getattr(huey, "item_run_task", None)
    if task is None:
        with _register_lock:
            task = getattr(huey, "item_run_task", None) or _item_run_task_register(huey, provider_id)
    return task


def consumer_huey(provider_id: str) -> RedisHuey:
    """The provider's Huey with its tasks registered, for the consumer to serve."""
    item_run_task(provider_id)
    return huey_for(provider_id)


def item_messages_push_on(pipeline: redis.client.Pipeline, *, provider_id: str, items: list[QueuedItem]) -> None:
    """Queue one item-run message per item on the caller's pipeline: one ZADD per queue and priority.

    The priority travels in the message too, so Huey's own retries and delayed re-runs keep it.
    """
    huey, task = huey_for(provider_id), item_run_task(provider_id)
    by_priority: dict[int, list[QueuedItem]] = {}
    for item in items:
        by_priority.setdefault(QUEUE_PRIORITY.get(item.priority, QUEUE_PRIORITY["normal"]), []).append(item)
    prefix = uuid.uuid4().hex
    for priority, queued in by_priority.items():
        # Huey builds each message from a Task object with a fresh uuid4; for a run of 100,000 items
        # that was most of the submit. One message is built Huey's way and the others copy it with
        # their own item and id (unique: one random prefix per push, numbered).
        template = huey._registry.create_message(task.s(queued[0], priority=priority))
        messages = [huey.serializer.serialize(template._replace(id=f"{prefix}-{priority}-{n}", args=(item,)))
                    for n, item in enumerate(queued)]
        huey.storage.enqueue_many_on(pipeline, messages, priority=priority)


def item_schedule(item: QueuedItem, *, delay: float) -> None:
    """Put one item's message on its queue to run in `delay` seconds (Huey's schedule), at its priority."""
    priority = QUEUE_PRIORITY.get(item.priority, QUEUE_PRIORITY["normal"])
    item_run_task(item.provider_id).schedule(args=(item,), delay=delay, priority=priority)


def _queued_item_from(provider_id: str, args: tuple, kwargs: dict) -> QueuedItem | None:
    """The message's item, or None for a payload of any other shape (logged and dropped once)."""
    if len(args) != 1 or kwargs:
        return None
    value = args[0]
    if isinstance(value, QueuedItem):
        valid = (
            isinstance(value.item_id, int) and not isinstance(value.item_id, bool)
            and isinstance(value.group_id, str) and value.provider_id == provider_id
        )
        return value if valid else None
    if isinstance(value, int) and not isinstance(value, bool):
        return QueuedItem(item_id=value, group_id="", provider_id=provider_id)  # an older release's message
    return None


def _item_run_task_register(huey: RedisHuey, provider_id: str) -> TaskWrapper:
    def item_run_task(*args, **kwargs) -> None:
        item = _queued_item_from(provider_id, args, kwargs)
        if item is None:
            logger.error("dropped a %s task with a malformed payload: args=%r kwargs=%r", provider_id, args, kwargs)
            return
        from agent.services.items import item_run

        # Worker threads live long; stale or broken DB connections must not fail an item.
        close_old_connections()
        try:
            item_run(item=item)
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            # Wait for the database in this thread rather than spinning every queued message through
            # Huey's retries: a consumer of W workers holds W messages and pops no more meanwhile.
            # Running the item again is safe: only a queued item starts, a result is recorded once.
            database_outage_wait_out(lambda: item_run(item=item), patience=settings.AGENT_DB_OUTAGE_SECONDS,
                                     what=f"item {item.item_id}", first_error=exc)
        finally:
            close_old_connections()

    # An exception escaping the service (Redis briefly unavailable, the database away for longer
    # than AGENT_DB_OUTAGE_SECONDS) retries the task; recording is idempotent, so a retry can
    # never produce a second answer, and the recovery sweep puts back what Huey gives up on.
    huey.item_run_task = huey.task(name=ITEM_RUN_TASK_NAME, retries=5, retry_delay=3)(item_run_task)
    return huey.item_run_task
