"""Messages a consumer cannot use are logged and dropped; the consumer keeps serving its queue."""
from __future__ import annotations

import pytest

from agent.models import JobGroup, JobItem
from agent.queues import huey_for
from agent.tasks import item_run_task
from tests.factories import workspace_with_prompts
from tests.faults.support import FAST_RECOVERY, assert_exactly_one_result_per_item, wait_closed, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]


def test_garbage_wrong_payloads_and_deleted_items_do_not_stop_a_consumer(api, user, consumers, fault_redis) -> None:
    huey, task = huey_for("claude"), item_run_task("claude")
    doomed = workspace_with_prompts(user=user, prompts=2, providers=["claude"])
    doomed_group = api.post(f"/api/workspaces/{doomed.id}/runs/").json()["jobGroupId"]
    JobGroup.objects.filter(id=doomed_group).delete()  # its items go with it; their messages stay queued
    bad = [
        b"\x00 not a pickle at all",
        huey.serialize_task(task.s("12")),
        huey.serialize_task(task.s({"item_id": 1})),
        huey.serialize_task(task.s(None)),
        huey.serialize_task(task.s(1, 2)),  # wrong arity: Huey logs it and retries it a few times
    ]
    for message in bad:
        huey.storage.enqueue(message)
    consumer = consumers.start("claude", workers=2, **dict(FAST_RECOVERY, REDIS_URL=fault_redis.url))

    workspace = workspace_with_prompts(user=user, prompts=10, providers=["claude"])
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    wait_closed(group_id, logs=consumers.logs, timeout=60)

    assert assert_exactly_one_result_per_item(api, group_id, expected_items=10) == {"ok": 10}
    assert consumer.poll() is None, "the consumer is still running"
    assert not JobItem.objects.filter(group_id=doomed_group).exists()
    # The run's messages may be served before the bad ones (they sort by priority): wait for those too.
    wait_until(lambda: consumers.logs().count("malformed payload") >= 3
               and consumers.logs().count("no longer exists; dropped") == 2, what="bad messages dropped",
               logs=consumers.logs)
    assert consumer.poll() is None, "the consumer is still running after the bad messages"
    logs = consumers.logs()
    assert logs.count("malformed payload") >= 3  # "12", {"item_id": 1} and None (wrong arity may be one more)
    assert logs.count("no longer exists; dropped") == 2
