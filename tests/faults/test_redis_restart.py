"""Redis dies mid-group and comes back empty: the database answers meanwhile, the sweep rebuilds the rest."""
from __future__ import annotations

import time

import pytest

from agent.models import JobGroup, JobItem
from tests.factories import workspace_with_prompts
from tests.faults.support import (
    FAST_RECOVERY,
    PROVIDERS,
    assert_exactly_one_result_per_item,
    finished_items,
    record_recovery,
    running_items,
    wait_closed,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

PROMPTS = 50
ITEMS = PROMPTS * len(PROVIDERS)


def test_redis_restarted_with_its_data_wiped_mid_group(api, user, consumers, fault_redis) -> None:
    """Scenario 3: queues and progress vanish with Redis; the group still completes, exactly."""
    workspace = workspace_with_prompts(user=user, prompts=PROMPTS)
    env = dict(FAST_RECOVERY, REDIS_URL=fault_redis.url)
    consumers.start_all(workers=4, **env)
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    wait_until(lambda: finished_items(group_id) >= ITEMS // 5 and running_items(group_id),
               what="the group to be well under way", logs=consumers.logs)

    down_at = time.monotonic()
    fault_redis.stop()

    # While Redis is down, the status API keeps answering from the database...
    during = api.get(f"/api/runs/{group_id}/status/")
    assert during.status_code == 200
    body = during.json()
    assert body["status"] == "pending"
    seen = body["response"]["stats"]
    assert seen["expectedResponses"] == ITEMS
    assert 0 < seen["actualResponses"] + seen["failedResponses"] < ITEMS
    assert api.get(f"/api/runs/{group_id}/").status_code == 200
    assert api.get(f"/api/runs/{group_id}/answers/").json()["count"] == ITEMS
    # ...and only what truly needs Redis is refused: a clear 503 in JSON, and that group ends failed.
    refused = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert refused.status_code == 503 and refused["Content-Type"] == "application/json"
    assert "Redis" in refused.json()["detail"] and refused["Retry-After"]
    assert JobGroup.objects.exclude(id=group_id).get().status == JobGroup.Status.FAILED
    time.sleep(1.5)  # the consumers meet the outage: in-flight counts fail, pops fail

    restarted_at = time.monotonic()
    fault_redis.start_empty()  # same port, no data: queues, progress objects and locks are gone

    done_at = wait_closed(group_id, logs=consumers.logs)

    statuses = assert_exactly_one_result_per_item(api, group_id, expected_items=ITEMS)
    assert statuses == {"ok": ITEMS}
    redone = JobItem.objects.filter(group_id=group_id, attempts__gt=1).count()
    record_recovery("3. Redis restarted empty mid-group (4 x 50)", done_at - restarted_at,
                    f"Redis down {restarted_at - down_at:.1f} s; {done_at - down_at:.1f} s from the crash; "
                    f"{redone} items run again")
