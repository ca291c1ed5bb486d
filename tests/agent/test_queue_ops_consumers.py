"""Queue operations against real consumers: pause across restarts, consumers counted, /metrics totals."""
from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from agent.models import JobItem
from agent.queue_ops import queue_overview_list, queue_pause, queue_resume
from tests.factories import wait_for_group_closed, wait_for_status, workspace_with_prompts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

FAST_TTL = "3"  # AGENT_CONSUMER_TTL of the consumers here: a dead one drops out in seconds


def _overview(provider: str):
    return next(o for o in queue_overview_list() if o.provider == provider)


def _wait(predicate, *, what: str, timeout: float = 60.0, logs=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs() if logs else ''}")


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="ops", password="x" * 12, is_staff=True))
    return client


def test_paused_queue_holds_items_across_a_consumer_restart_and_releases_them_on_resume(user, api, consumers) -> None:
    queue_pause(provider_id="chatgpt", user=user)
    workspace = workspace_with_prompts(user=user, prompts=4, providers=["chatgpt", "claude"])
    submitted = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert submitted.status_code == 202  # a paused queue still takes runs
    group_id = submitted.json()["jobGroupId"]

    first = consumers.start("chatgpt", workers=2, AGENT_CONSUMER_TTL=FAST_TTL)
    consumers.start("claude", workers=2, AGENT_CONSUMER_TTL=FAST_TTL)
    _wait(lambda: JobItem.objects.filter(group_id=group_id, provider="claude", status="ok").count() == 4,
          what="claude to answer", logs=consumers.logs)
    _wait(lambda: _overview("chatgpt").consumers == 1, what="the chatgpt consumer's heartbeat", logs=consumers.logs)
    time.sleep(1.5)  # the chatgpt consumer had every chance to take an item
    assert set(JobItem.objects.filter(group_id=group_id, provider="chatgpt").values_list("status", flat=True)) == {"queued"}
    chatgpt = _overview("chatgpt")
    assert (chatgpt.paused, chatgpt.paused_by, chatgpt.waiting, chatgpt.running) == (True, "alice", 4, 0)
    status = api.get(f"/api/runs/{group_id}/status/").json()
    assert status["paused_providers"] == ["chatgpt"] and status["status"] == "pending"

    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)
    consumers.start("chatgpt", workers=2, AGENT_CONSUMER_TTL=FAST_TTL)
    _wait(lambda: _overview("chatgpt").consumers == 1, what="the restarted consumer", logs=consumers.logs)
    time.sleep(1.5)
    assert JobItem.objects.filter(group_id=group_id, provider="chatgpt", status="queued").count() == 4
    assert _overview("chatgpt").waiting == 4

    queue_resume(provider_id="chatgpt", user=user)
    body = wait_for_status(api, group_id, timeout=60, logs=consumers.logs)
    assert body["response"]["stats"]["actualResponses"] == 8
    assert body["paused_providers"] == []
    assert wait_for_group_closed(group_id).status == "completed"
    assert set(JobItem.objects.filter(group_id=group_id).values_list("attempts", flat=True)) == {1}


def test_two_consumers_on_one_queue_count_as_two_and_a_killed_one_drops_out(consumers, staff_api) -> None:
    consumers.start("gemini", workers=2, AGENT_CONSUMER_TTL=FAST_TTL)
    doomed = consumers.start("gemini", workers=3, AGENT_CONSUMER_TTL=FAST_TTL)
    gemini = _wait(lambda: (o := _overview("gemini")).consumers == 2 and o, what="two gemini consumers", logs=consumers.logs)
    assert gemini.workers == 5
    row = next(q for q in staff_api.get("/api/queues/").json()["results"] if q["provider"] == "gemini")
    assert (row["consumers"], row["workers"]) == (2, 5)
    assert _overview("chatgpt").consumers == 0

    doomed.send_signal(signal.SIGKILL)  # no goodbye: only the TTL can tell
    killed_at = time.monotonic()
    doomed.wait(timeout=10)
    _wait(lambda: _overview("gemini").consumers == 1, what="the killed consumer to drop out", timeout=60)
    assert time.monotonic() - killed_at <= float(FAST_TTL) + 2.0
    assert _overview("gemini").workers == 2


def _scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _drained(samples: dict) -> dict | None:
    waiting = [v for (name, _), v in samples.items() if name == "oneglanse_queue_waiting"]
    return samples if waiting and not any(waiting) else None


def test_metrics_totals_equal_the_database_counts_after_a_run_with_failures(user, api, consumers, client) -> None:
    workspace = workspace_with_prompts(user=user, prompts=6, providers=["chatgpt", "gemini", "claude"])
    for queue in ("chatgpt", "gemini", "claude"):
        consumers.start(queue, workers=2, AGENT_SIMULATED_FAILURE_RATE="gemini=1.0,chatgpt=0.5")
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    wait_for_status(api, group_id, timeout=90, logs=consumers.logs)
    wait_for_group_closed(group_id)
    # A second run, cancelled before any consumer of claude could take it, brings cancelled items.
    queue_pause(provider_id="claude")
    second = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    assert api.post(f"/api/runs/{second}/cancel/").status_code == 200
    queue_resume(provider_id="claude")
    wait_for_group_closed(second, timeout=60)

    database = Counter(JobItem.objects.values_list("provider", "status"))
    assert database[("gemini", "failed")] >= 6 and database[("gemini", "ok")] == 0 and database[("claude", "cancelled")] >= 1
    # The cancelled run's messages stay on the queues until the consumers pop and drop them.
    samples = _wait(lambda: _drained(_scrape(client)), what="the queues to drain", timeout=30, logs=consumers.logs)
    for provider in ("chatgpt", "perplexity", "gemini", "claude"):
        for status in ("ok", "failed", "cancelled"):
            key = ("oneglanse_items_finished_total", (("provider", provider), ("status", status)))
            assert samples[key] == database[(provider, status)], (provider, status)
        labels = (("provider", provider),)
        assert samples[("oneglanse_item_duration_seconds_count", labels)] == database[(provider, "ok")]
        inf = ("oneglanse_item_duration_seconds_bucket", (("le", "+Inf"), ("provider", provider)))
        assert samples[inf] == database[(provider, "ok")]
        assert samples[("oneglanse_queue_waiting", labels)] == 0
        assert samples[("oneglanse_queue_running", labels)] == 0
        assert samples[("oneglanse_queue_paused", labels)] == 0
    assert samples[("oneglanse_consumers", (("provider", "gemini"),))] == 1
    assert samples[("oneglanse_consumers", (("provider", "perplexity"),))] == 0
    chatgpt_ok = database[("chatgpt", "ok")]
    # The consumers' simulated calls take about 20 ms: every one sits at or under the 0.25 s bucket.
    le = ("oneglanse_item_duration_seconds_bucket", (("le", "0.25"), ("provider", "chatgpt")))
    assert samples[le] == chatgpt_ok
    assert 0.01 * chatgpt_ok <= samples[("oneglanse_item_duration_seconds_sum", (("provider", "chatgpt"),))] <= 0.25 * chatgpt_ok
