"""Consumers killed with SIGKILL mid-group: the items they held are recovered, none is doubled."""
from __future__ import annotations

import time

import pytest
from django.db.models import Max

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


def test_sigkill_one_consumer_per_provider_mid_group_then_fresh_consumers_finish_it(api, user, consumers, fault_redis) -> None:
    """Scenario 1: two consumers a queue; one of each is SIGKILLed mid-group and fresh ones start."""
    workspace = workspace_with_prompts(user=user, prompts=PROMPTS)
    env = dict(FAST_RECOVERY, REDIS_URL=fault_redis.url, AGENT_SIMULATED_LATENCY_MS="200")
    victims = {provider: consumers.start(provider, workers=2, **env) for provider in PROVIDERS}
    for provider in PROVIDERS:
        consumers.start(provider, workers=2, **env)
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]

    wait_until(lambda: finished_items(group_id) >= ITEMS // 5 and running_items(group_id),
               what="the group to be well under way", logs=consumers.logs)
    in_flight = running_items(group_id)
    fault_at = time.monotonic()
    for process in victims.values():
        assert kill(process) != 0
    for provider in PROVIDERS:
        consumers.start(provider, workers=2, **env)

    done_at = wait_closed(group_id, logs=consumers.logs)

    statuses = assert_exactly_one_result_per_item(api, group_id, expected_items=ITEMS)
    assert statuses == {"ok": ITEMS}
    redone = JobItem.objects.filter(group_id=group_id, attempts__gt=1).count()
    record_recovery("1. SIGKILL one consumer per provider (4 x 50)", done_at - fault_at,
                    f"{len(in_flight)} items in flight at the kill, {redone} run again")


def test_sigkill_every_consumer_then_restart_all_but_one_queue_and_that_one_later(api, user, consumers, fault_redis) -> None:
    """Scenario 2: every consumer dies; three queues come back at once, the fourth only later."""
    workspace = workspace_with_prompts(user=user, prompts=PROMPTS)
    env = dict(FAST_RECOVERY, REDIS_URL=fault_redis.url)
    first = [consumers.start(provider, workers=4, **env) for provider in PROVIDERS]
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]

    wait_until(lambda: finished_items(group_id) >= ITEMS // 5 and running_items(group_id),
               what="the group to be well under way", logs=consumers.logs)
    fault_at = time.monotonic()
    for process in first:
        kill(process)
    # The queue with the most work left comes back late, so it surely still has items waiting.
    unfinished = JobItem.objects.filter(group_id=group_id, status__in=JobItem.UNFINISHED)
    late = max(PROVIDERS, key=lambda provider: unfinished.filter(provider=provider).count())
    for provider in PROVIDERS:
        if provider != late:
            consumers.start(provider, workers=4, **env)

    wait_until(
        lambda: not JobItem.objects.filter(group_id=group_id, status__in=JobItem.UNFINISHED).exclude(provider=late).exists(),
        what="the three restarted queues to finish their items", logs=consumers.logs,
    )
    waiting = JobItem.objects.filter(group_id=group_id, provider=late, status__in=JobItem.UNFINISHED).count()
    assert waiting > 0, "the late queue's items wait for its consumer; they neither fail nor vanish"
    assert not JobItem.objects.filter(group_id=group_id, provider=late, status="failed").exists()
    consumers.start(late, workers=4, **env)

    done_at = wait_closed(group_id, logs=consumers.logs)

    statuses = assert_exactly_one_result_per_item(api, group_id, expected_items=ITEMS)
    assert statuses == {"ok": ITEMS}
    most = JobItem.objects.filter(group_id=group_id).aggregate(m=Max("attempts"))["m"]
    record_recovery("2. SIGKILL every consumer, one queue restarted late (4 x 50)", done_at - fault_at,
                    f"{waiting} {late} items waited for their consumer; max attempts {most}")
