"""A submitted run's queue messages: one per item, each its own task id, each naming its item."""
from __future__ import annotations

import pytest

from agent.models import JobItem
from agent.queues import QUEUE_PRIORITY, huey_for
from agent.services.submit import job_group_submit
from agent.tasks import ITEM_RUN_TASK_NAME, QueuedItem
from tests.factories import workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_item_gets_one_message_with_its_own_task_id(user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=30), user=user).job_group
    seen: list[QueuedItem] = []
    ids: set[str] = set()
    for provider in group.providers:
        huey = huey_for(provider)
        for raw in huey.storage.enqueued_items():
            task = huey.deserialize_task(raw)
            assert task.name.endswith(ITEM_RUN_TASK_NAME.split(".")[-1]) and task.retries == 5
            assert task.priority == QUEUE_PRIORITY["normal"]
            ids.add(task.id)
            seen.append(task.args[0])
    expected = [QueuedItem.of(item) for item in JobItem.objects.filter(group=group).order_by("provider", "id")]
    assert sorted(seen, key=lambda q: (q.provider_id, q.item_id)) == expected
    assert len(ids) == len(expected) == 120
