"""SIGTERM mid-group: consumers finish what they hold, exit, and new consumers finish the group."""
from __future__ import annotations

import signal
import time

import pytest

from agent.models import JobItem
from tests.factories import workspace_with_prompts
from tests.faults.support import (
    FAST_RECOVERY,
    PROVIDERS,
    assert_exactly_one_result_per_item,
    finished_items,
    kill,
    record_recovery,
    running_items,
    wait_closed,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

PROMPTS = 50
ITEMS = PROMPTS * len(PROVIDERS)


def test_sigterm_mid_group_finishes_in_flight_items_and_new_consumers_finish_the_group(api, user, consumers, fault_redis) -> None:
    """Scenario 4: the items running at SIGTERM end ok on their first attempt; nothing is redone."""
    workspace = workspace_with_prompts(user=user, prompts=PROMPTS)
    # A longer recovery window than the other scenarios: nothing here should need recovering,
    # and a busy machine must not mistake a slow heartbeat for a lost item.
    env = dict(FAST_RECOVERY, REDIS_URL=fault_redis.url, AGENT_RECOVERY_SECONDS="10", AGENT_SIMULATED_LATENCY_MS="300")
    first = [consumers.start(provider, workers=4, args=("-t", "60"), **env) for provider in PROVIDERS]
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    wait_until(lambda: finished_items(group_id) >= ITEMS // 5 and len(running_items(group_id)) >= 4,
               what="the group to be well under way", logs=consumers.logs)

    in_flight = running_items(group_id)
    fault_at = time.monotonic()
    exit_codes = [kill(process, signal.SIGTERM) for process in first]

    assert exit_codes == [0] * len(first), consumers.logs()
    stopped_at = time.monotonic()
    held = JobItem.objects.filter(id__in=in_flight)
    assert set(held.values_list("status", flat=True)) == {"ok"}, "in-flight items were finished before exit"
    assert not JobItem.objects.filter(group_id=group_id, status=JobItem.Status.RUNNING).exists(), "nothing left running"
    left = JobItem.objects.filter(group_id=group_id, status=JobItem.Status.QUEUED).count()
    assert left > 0, "the rest waits on the queues for the next consumers"
    for provider in PROVIDERS:
        consumers.start(provider, workers=4, **env)

    done_at = wait_closed(group_id, logs=consumers.logs)

    statuses = assert_exactly_one_result_per_item(api, group_id, expected_items=ITEMS)
    assert statuses == {"ok": ITEMS}
    assert set(held.values_list("attempts", flat=True)) == {1}, "an in-flight item was redone"
    assert not JobItem.objects.filter(group_id=group_id, attempts__gt=1).exists(), "nothing at all was redone"
    record_recovery("4. SIGTERM every consumer mid-group (4 x 50)", done_at - fault_at,
                    f"{len(in_flight)} items in flight finished during a {stopped_at - fault_at:.1f} s shutdown; "
                    f"{left} queued items taken by the new consumers")


def test_items_still_running_when_the_shutdown_timeout_ends_are_recovered(api, user, consumers, fault_redis) -> None:
    """SIGTERM with -t 1 while every item needs 8 s: the consumer exits anyway, and the items are run again."""
    workspace = workspace_with_prompts(user=user, prompts=4, providers=["perplexity"])
    env = dict(FAST_RECOVERY, REDIS_URL=fault_redis.url)
    slow = consumers.start("perplexity", workers=4, args=("-t", "1"), **dict(env, AGENT_SIMULATED_LATENCY_MS="8000"))
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    wait_until(lambda: len(running_items(group_id)) == 4, what="all four items to be running", logs=consumers.logs)

    fault_at = time.monotonic()
    kill(slow, signal.SIGTERM, timeout=30)
    assert len(running_items(group_id)) == 4, "interrupted items are left running, with a heartbeat that stopped"
    consumers.start("perplexity", workers=4, **env)

    done_at = wait_closed(group_id, logs=consumers.logs)

    assert assert_exactly_one_result_per_item(api, group_id, expected_items=4) == {"ok": 4}
    assert set(JobItem.objects.filter(group_id=group_id).values_list("attempts", flat=True)) == {2}
    record_recovery("4b. SIGTERM with -t 1 while 4 slow items run (1 x 4)", done_at - fault_at,
                    "interrupted items recovered by the sweep and run again")
