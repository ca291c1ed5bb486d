"""Helpers of the fault-injection tests: a killable Redis, waiting, and the exactly-once check."""
from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable

from agent import progress
from agent.models import JobGroup, JobGroupProvider, JobItem
from tests.redis_server import RedisServer

# Recovery knobs for the consumers: a lost item is noticed within seconds, not minutes, and
# a simulated call lasts long enough that a fault always finds work in flight.
FAST_RECOVERY = {
    "AGENT_RECOVERY_SECONDS": "2",
    "AGENT_RECOVERY_INTERVAL": "1",
    "AGENT_SIMULATED_LATENCY_MS": "150",
}
PROVIDERS = ("chatgpt", "perplexity", "gemini", "claude")
WAIT_SECONDS = 120.0  # generous: a noisy 2-core machine runs these

RECOVERY_TIMES: list[str] = []


class FaultRedis:
    """A redis-server that a test may stop, and start again on the same port with no data."""

    def __init__(self) -> None:
        self.server = RedisServer().start()
        self.port = self.server.port
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()

    def start_empty(self) -> None:
        # Our RedisServer saves nothing (no RDB, no AOF): a restart comes back empty.
        self.server = RedisServer(port=self.port).start()


def record_recovery(scenario: str, seconds: float, detail: str = "", *, since: str = "the fault") -> None:
    """Note how long a scenario took to end; the fault suite prints these at the end of the run."""
    line = f"{scenario}: {seconds:.1f} s from {since} to the group's completion" + (f" ({detail})" if detail else "")
    RECOVERY_TIMES.append(line)
    print(line)


def wait_until(predicate: Callable[[], bool], *, what: str, timeout: float = WAIT_SECONDS, logs=None) -> float:
    """Poll until `predicate()` holds; returns the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs() if logs else ''}")


def group_closed(group_id) -> bool:
    return JobGroup.objects.filter(id=group_id, finished_at__isnull=False).exclude(status__in=JobGroup.UNFINISHED).exists()


def wait_closed(group_id, *, logs=None, timeout: float = WAIT_SECONDS) -> float:
    return wait_until(lambda: group_closed(group_id), what=f"group {group_id} to close: {_row_counts(group_id)}",
                      timeout=timeout, logs=logs)


def finished_items(group_id) -> int:
    return JobItem.objects.filter(group_id=group_id, status__in=JobItem.FINISHED).count()


def running_items(group_id) -> list[int]:
    return list(JobItem.objects.filter(group_id=group_id, status=JobItem.Status.RUNNING).values_list("id", flat=True))


def kill(process: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 60.0) -> int:
    process.send_signal(sig)
    return process.wait(timeout=timeout)


def _row_counts(group_id) -> dict:
    return dict(Counter(JobItem.objects.filter(group_id=group_id).values_list("provider", "status")))


def assert_exactly_one_result_per_item(api, group_id, *, expected_items: int, group_status: str = "completed") -> Counter:
    """Every (provider, prompt) item has one row with one final result, and every counter equals the rows."""
    group = JobGroup.objects.get(id=group_id)
    rows = JobItem.objects.filter(group=group)
    assert group.expected_responses == expected_items
    assert rows.count() == expected_items, "an item is missing or doubled"
    assert rows.values("provider", "prompt").distinct().count() == expected_items
    statuses = Counter(rows.values_list("status", flat=True))
    assert set(statuses) <= set(JobItem.FINISHED), f"unfinished items in a closed group: {statuses}"
    assert not rows.filter(status=JobItem.Status.OK, text="").exists(), "an ok item without its answer"
    assert not rows.filter(status=JobItem.Status.FAILED, error="").exists(), "a failed item without its error"
    assert group.status == group_status and group.finished_at

    by_provider = Counter(rows.values_list("provider", "status"))
    stats = {
        "totalPrompts": group.total_prompts,
        "expectedResponses": expected_items,
        "samples": group.samples,
        "actualResponses": statuses[JobItem.Status.OK],
        "failedResponses": statuses[JobItem.Status.FAILED],
        "cancelledResponses": statuses[JobItem.Status.CANCELLED],
    }
    results = {p: by_provider[(p, JobItem.Status.OK)] for p in group.providers}
    failed = {p: by_provider[(p, JobItem.Status.FAILED)] for p in group.providers}
    assert group.progress["stats"] == stats
    assert (group.progress["results"], group.progress["failed"]) == (results, failed)
    assert group.progress["status"] == "completed"
    live = progress.progress_read_live(group.id)
    if live is not None:  # the live mirror, when Redis still has it, agrees too
        assert (live["status"], live["stats"], live["results"], live["failed"]) == ("completed", stats, results, failed)
    body = api.get(f"/api/runs/{group.id}/status/").json()
    assert body["status"] == "completed" and body["response"]["stats"] == stats
    assert set(JobGroupProvider.objects.filter(group=group).values_list("status", flat=True)) <= {"completed", "failed"}
    return statuses
