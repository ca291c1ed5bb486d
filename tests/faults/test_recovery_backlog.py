"""A huge lost backlog in one workspace: every item is put back, and another workspace's run is not held up.

The backlog is built with one INSERT ... SELECT (as if a restart had wiped Redis under 40 runs of
1,000 chatgpt prompts), more items than SQLite's stock limit of 32,766 bound variables.
`FAULT_BACKLOG_RUNS=260` runs the full size of the report (260,000 lost items).
"""
from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from agent.connections import redis_client
from agent.models import JobItem
from agent.queues import queue_messages
from agent.tasks import consumer_huey
from tests.backlog import lost_backlog
from tests.factories import workspace_with_prompts
from tests.faults.support import assert_exactly_one_result_per_item, record_recovery, wait_closed, wait_until
from tests.sqlite_stock_limits import SQLITE_STOCK_VARIABLE_LIMIT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

RUNS = int(os.environ.get("FAULT_BACKLOG_RUNS", "40"))
PROMPTS = 1000
LOST = RUNS * PROMPTS


def _not_yet_recovered(workspace, since) -> int:
    """Backlog items nobody has put back since `since`: still queued from before, or running with a dead heartbeat."""
    return JobItem.objects.filter(group__workspace=workspace).filter(
        Q(status=JobItem.Status.QUEUED, next_attempt_at__lt=since)
        | Q(status=JobItem.Status.RUNNING, heartbeat_at__lt=since)
    ).count()


def _queued_item_ids(provider: str) -> set[int]:
    huey = consumer_huey(provider)  # its task registered, so messages decode
    return {huey.deserialize_task(m).args[0].item_id for m in queue_messages(provider)}


def test_a_backlog_beyond_sqlites_variable_limit_is_recovered_and_another_workspaces_run_finishes_quickly(
    api, user, consumers, fault_redis
) -> None:
    """Issue 11.1: 40 x 1,000 lost chatgpt items (260 x 1,000 with FAULT_BACKLOG_RUNS=260), a 2-item claude run
    in another workspace, Redis flushed, consumers started: the claude run ends in seconds, every lost item is back."""
    assert LOST > SQLITE_STOCK_VARIABLE_LIMIT
    lost_at = timezone.now() - timedelta(hours=1)
    built = time.monotonic()
    backlog, inserted = lost_backlog(runs=RUNS, prompts=PROMPTS, lost_at=lost_at)
    assert inserted == LOST
    built = time.monotonic() - built

    other = workspace_with_prompts(user=user, prompts=2, providers=["claude"], name="Small team")
    claude_run = api.post(f"/api/workspaces/{other.id}/runs/").json()["jobGroupId"]
    redis_client().flushdb()  # what a restart of the service did to every queued message and progress object
    flushed = timezone.now()

    env = {"REDIS_URL": fault_redis.url, "AGENT_RECOVERY_SECONDS": "3", "AGENT_RECOVERY_INTERVAL": "1",
           "AGENT_SIMULATED_LATENCY_MS": "100"}
    started_at = time.monotonic()
    consumers.start("claude", workers=2, **env)
    consumers.start("chatgpt", workers=4, **env)

    claude_done_at = wait_closed(claude_run, logs=consumers.logs, timeout=60)
    assert assert_exactly_one_result_per_item(api, claude_run, expected_items=2) == {"ok": 2}
    recovered_at = wait_until(lambda: _not_yet_recovered(backlog, flushed) == 0, timeout=max(120, LOST / 1000),
                              logs=consumers.logs,
                              what="every lost backlog item to be put back on its queue")
    consumers.stop()  # graceful: nothing is popped after this, so the queue can be compared with the rows

    still_queued = set(
        JobItem.objects.filter(group__workspace=backlog, status=JobItem.Status.QUEUED).values_list("id", flat=True)
    )
    assert still_queued <= _queued_item_ids("chatgpt"), "a queued backlog item has no message on its queue"
    assert not JobItem.objects.filter(group__workspace=backlog, status=JobItem.Status.FAILED).exists()
    record_recovery(
        f"11.1 {LOST:,} lost chatgpt items in {RUNS} runs + a 2-item claude run elsewhere, Redis flushed",
        claude_done_at - started_at,
        f"the whole backlog back on its queue {recovered_at - started_at:.1f} s after the consumers started; "
        f"rows built in {built:.1f} s",
        since="the consumers' start",
    )
