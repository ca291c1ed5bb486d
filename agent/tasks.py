"""Queue tasks: thin adapters that validate the payload and call the services."""
from __future__ import annotations

import logging

from django.db import close_old_connections
from huey import RedisHuey

logger = logging.getLogger(__name__)

ITEM_RUN_TASK_NAME = "agent.item_run"


def tasks_register(huey: RedisHuey, provider_id: str) -> None:
    """Register the item task on one provider's Huey; called once per Huey instance."""

    def item_run_task(*args, **kwargs) -> None:
        # Any shape is accepted here and checked, so a bad message is dropped once, not retried.
        item_id = args[0] if len(args) == 1 and not kwargs else None
        if not isinstance(item_id, int) or isinstance(item_id, bool):
            logger.error("dropped a %s task with a malformed payload: args=%r kwargs=%r", provider_id, args, kwargs)
            return
        from agent.services import item_run

        # Worker threads live long; stale or broken DB connections must not fail an item.
        close_old_connections()
        try:
            item_run(item_id=item_id, provider_id=provider_id)
        finally:
            close_old_connections()

    # An exception escaping the service (database or Redis briefly unavailable) retries the
    # task; recording is idempotent, so a retry can never produce a second answer.
    huey.item_run_task = huey.task(name=ITEM_RUN_TASK_NAME, retries=5, retry_delay=3)(item_run_task)
