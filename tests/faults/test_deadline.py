"""A provider whose consumer never runs: its items fail at the group's deadline and the group ends."""
from __future__ import annotations

import time

import pytest

from agent.models import JobGroupProvider, JobItem
from tests.factories import workspace_with_prompts
from tests.faults.support import FAST_RECOVERY, assert_exactly_one_result_per_item, record_recovery, wait_closed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

DEADLINE_SECONDS = 5
PROMPTS = 10


def test_provider_without_a_consumer_ends_by_the_deadline(api, user, consumers, fault_redis) -> None:
    """Scenario 6: chatgpt answers; gemini has no consumer at all; the group still ends."""
    workspace = workspace_with_prompts(user=user, prompts=PROMPTS, providers=["chatgpt", "gemini"])
    consumers.start("chatgpt", workers=4, **dict(
        FAST_RECOVERY, REDIS_URL=fault_redis.url, AGENT_GROUP_DEADLINE_SECONDS=str(DEADLINE_SECONDS),
    ))
    submitted_at = time.monotonic()
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]

    done_at = wait_closed(group_id, logs=consumers.logs)

    statuses = assert_exactly_one_result_per_item(api, group_id, expected_items=2 * PROMPTS)
    assert statuses == {"ok": PROMPTS, "failed": PROMPTS}
    assert set(JobItem.objects.filter(group_id=group_id, provider="chatgpt").values_list("status", flat=True)) == {"ok"}
    gemini = JobItem.objects.filter(group_id=group_id, provider="gemini")
    assert set(gemini.values_list("status", flat=True)) == {"failed"}
    assert all("deadline exceeded" in error for error in gemini.values_list("error", flat=True))
    provider = JobGroupProvider.objects.get(group_id=group_id, provider="gemini")
    assert provider.status == "failed" and "deadline exceeded" in provider.error
    body = api.get(f"/api/runs/{group_id}/status/").json()["response"]
    assert body["providers"] == {"chatgpt": "completed", "gemini": "failed"}
    assert "deadline exceeded" in body["error"]
    elapsed = done_at - submitted_at
    assert elapsed >= DEADLINE_SECONDS, "nothing fails before the deadline"
    record_recovery(f"6. a provider with no consumer, deadline {DEADLINE_SECONDS} s (2 x {PROMPTS})", elapsed,
                    since="the submission")
