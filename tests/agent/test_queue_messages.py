"""A submitted run's queue messages: one per item, each its own task id, each naming its item."""
from __future__ import annotations

import uuid

import pytest
from huey.serializer import Serializer

from agent.models import JobItem
from agent.queues import QUEUE_PRIORITY, huey_for
from agent.services.submit import job_group_submit, job_groups_enqueue
from agent.tasks import ITEM_RUN_TASK_NAME, ItemMessages, MessageSplice, QueuedItem, item_run_task
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


@pytest.mark.parametrize("priority", ["high", "normal", "low"])
def test_spliced_messages_are_the_bytes_huey_writes_for_the_same_task(priority: str) -> None:
    """A submit splices its messages from one pickled template: each must be exactly Huey's own
    message for that item and id, so consumers, retries and recovery read it as Huey's."""
    group_id = str(uuid.uuid4())
    # Every width pickle writes an int in, at and around its limits.
    item_ids = [0, 1, 255, 256, 65_535, 65_536, 123_456_789, 2**31 - 1, 2**31, 2**40 + 7, 2**63 - 1]
    builder = ItemMessages("gemini", group_id, priority)
    assert builder.splice is not None  # the splice, not the pickling fallback, is what is checked here
    prefix = f"{uuid.uuid4().hex}-{QUEUE_PRIORITY[priority]}-"
    messages = builder.messages(prefix, item_ids, start=7)
    huey, task = huey_for("gemini"), item_run_task("gemini")
    for n, (item_id, raw) in enumerate(zip(item_ids, messages, strict=True), 7):
        item = QueuedItem(item_id=item_id, group_id=group_id, provider_id="gemini", priority=priority)
        assert raw == huey.serialize_task(task.s(item, id=f"{prefix}{n}", priority=QUEUE_PRIORITY[priority]))
        read = huey.deserialize_task(raw)
        assert (read.id, read.args, read.kwargs, read.priority, read.retries) == (
            f"{prefix}{n}", (item,), {}, QUEUE_PRIORITY[priority], 5
        )


def test_a_serializer_the_splice_cannot_match_gets_messages_pickled_one_by_one() -> None:
    huey, task = huey_for("claude"), item_run_task("claude")
    item = QueuedItem(item_id=42, group_id=str(uuid.uuid4()), provider_id="claude")
    template = huey._registry.create_message(task.s(item, priority=QUEUE_PRIORITY["normal"]))
    for serializer in (Serializer(compression=True), Serializer(pickle_protocol=2)):
        assert MessageSplice.of(serializer, template) is None


def test_two_runs_pushed_together_keep_their_order_within_a_priority(user) -> None:
    """A schedule tick enqueues its runs in one round trip: the earlier run's items are taken first."""
    workspace = workspace_with_prompts(user=user, prompts=3)
    first = job_group_submit(workspace=workspace, user=user, enqueue=False).job_group
    second = job_group_submit(workspace=workspace, user=user, enqueue=False).job_group
    job_groups_enqueue(groups=[first, second])
    huey = huey_for(first.providers[0])
    taken = [huey.deserialize_task(raw).args[0] for raw in huey.storage.enqueued_items()]
    expected = [QueuedItem.of(item, priority=group.priority) for group in (first, second)
                for item in JobItem.objects.filter(group=group, provider=first.providers[0]).order_by("id")]
    assert taken == expected
