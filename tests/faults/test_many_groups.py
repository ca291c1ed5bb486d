"""Many groups at once, with failures and recovery sweeps racing the workers: every counter is exact."""
from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from agent.models import JobItem
from tests.factories import UserFactory, workspace_with_prompts
from tests.faults.support import (
    FAST_RECOVERY,
    PROVIDERS,
    assert_exactly_one_result_per_item,
    record_recovery,
    wait_closed,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

GROUPS = 50
PROMPTS = 10
ITEMS = PROMPTS * len(PROVIDERS)


def test_fifty_groups_at_once_with_ten_percent_failures_keep_every_counter_exact(consumers, fault_redis) -> None:
    """Scenario 5: 50 groups x 40 items, 8 workers a queue, 10 % simulated failures, a sweep every second."""
    users = UserFactory.create_batch(5)
    clients = []
    for user in users:
        client = APIClient()
        client.force_authenticate(user)
        clients.append(client)
    workspaces = [workspace_with_prompts(user=users[i % len(users)], prompts=PROMPTS) for i in range(GROUPS)]
    consumers.start_all(workers=8, **dict(
        FAST_RECOVERY, REDIS_URL=fault_redis.url, AGENT_RECOVERY_SECONDS="3",
        AGENT_SIMULATED_LATENCY_MS="0", AGENT_SIMULATED_FAILURE_RATE="0.1",
    ))

    started_at = time.monotonic()
    submitted = []
    for i, workspace in enumerate(workspaces):
        client = clients[i % len(users)]
        response = client.post(f"/api/workspaces/{workspace.id}/runs/")
        assert response.status_code == 202, response.content
        submitted.append((client, response.json()["jobGroupId"]))

    done_at = max(wait_closed(group_id, logs=consumers.logs) for _, group_id in submitted)

    totals = {"ok": 0, "failed": 0}
    for client, group_id in submitted:
        statuses = assert_exactly_one_result_per_item(client, group_id, expected_items=ITEMS)
        assert set(statuses) <= {"ok", "failed"} and sum(statuses.values()) == ITEMS
        totals["ok"] += statuses["ok"]
        totals["failed"] += statuses["failed"]
    assert totals["ok"] + totals["failed"] == GROUPS * ITEMS
    assert 0 < totals["failed"] < GROUPS * ITEMS * 0.25, "about one item in ten fails"
    failed_rows = JobItem.objects.filter(status="failed")
    assert all("simulated failure" in e for e in failed_rows.values_list("error", flat=True))
    redone = JobItem.objects.filter(attempts__gt=1).count()
    record_recovery(f"5. {GROUPS} groups x {ITEMS} items at once, 8 workers a queue, 10 % failures (last group)",
                    done_at - started_at, f"{totals['failed']} of {GROUPS * ITEMS} items failed; {redone} run twice",
                    since="the first submission")
