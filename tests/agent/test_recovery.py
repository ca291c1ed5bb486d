"""The recovery sweep, heartbeats and the task's payload checks, driven in-process (no consumers).

Time is moved forward by passing `now` to the sweep rather than by sleeping; Redis and the
database are real, and "the queue" is the Huey list the consumers would pop.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from agent import heartbeat, progress
from agent.connections import redis_client
from agent.models import JobGroup, JobGroupProvider, JobItem
from agent.queues import huey_for, queue_length, queue_messages, queues_reset
from agent.recovery import BACKLOG_PATIENCE_WINDOWS, EXTRA_LOSSES_ALLOWED, RecoverySweeper, recovery_sweep
from agent.services.closing import job_group_cancel
from agent.services.items import answer_record, item_run
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem, item_run_task
from tests.factories import wait_for_group_closed, workspace_with_prompts
from tests.redis_server import free_port

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 60.0  # AGENT_RECOVERY_SECONDS in these tests


@pytest.fixture(autouse=True)
def _knobs(settings) -> None:
    settings.AGENT_RECOVERY_SECONDS = WINDOW
    settings.AGENT_RECOVERY_INTERVAL = 30.0
    settings.AGENT_GROUP_DEADLINE_SECONDS = 21600.0
    settings.AGENT_SIMULATED_LATENCY_MS = 0
    settings.AGENT_SIMULATED_FAILURE_RATE = "0"


def _submit(user, *, prompts: int, providers: list[str]) -> JobGroup:
    workspace = workspace_with_prompts(user=user, prompts=prompts, providers=providers)
    return job_group_submit(workspace=workspace, user=user).job_group


def _queue_key(provider: str) -> str:
    return huey_for(provider).storage.queue_key


def _queued_item_ids(provider: str) -> list[int]:
    """The item ids of the messages waiting on a provider's queue, oldest first."""
    huey = huey_for(provider)
    return [huey.deserialize_task(message).args[0].item_id for message in queue_messages(provider)]


def _empty_queue(provider: str) -> None:
    """As if the consumers had popped every message (and then, say, died)."""
    redis_client().delete(_queue_key(provider))


def _later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def _mark_running(item: JobItem, *, heartbeat_age: float, attempts: int = 1) -> None:
    beat = timezone.now() - timedelta(seconds=heartbeat_age)
    JobItem.objects.filter(id=item.id).update(
        status=JobItem.Status.RUNNING, attempts=attempts, heartbeat_at=beat, started_at=beat, next_attempt_at=None
    )


# --- lost items go back on the queue ---

def test_running_item_with_stale_heartbeat_is_requeued_and_pushed(user) -> None:
    group = _submit(user, prompts=2, providers=["chatgpt"])
    stale, fresh = JobItem.objects.filter(group=group).order_by("id")
    _empty_queue("chatgpt")
    _mark_running(stale, heartbeat_age=WINDOW + 5)
    _mark_running(fresh, heartbeat_age=1)

    report = recovery_sweep()

    assert report.requeued == {"chatgpt": 1}
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == JobItem.Status.QUEUED and stale.attempts == 1
    assert fresh.status == JobItem.Status.RUNNING
    assert queue_length("chatgpt") == 1
    assert _queued_item_ids("chatgpt") == [stale.id]


def test_running_item_with_fresh_heartbeat_is_left_alone(user) -> None:
    group = _submit(user, prompts=1, providers=["gemini"])
    item = JobItem.objects.get(group=group)
    _empty_queue("gemini")
    _mark_running(item, heartbeat_age=WINDOW - 10)

    assert not recovery_sweep().requeued
    item.refresh_from_db()
    assert item.status == JobItem.Status.RUNNING
    assert queue_length("gemini") == 0


def test_overdue_queued_item_is_pushed_again_when_its_queue_is_empty(user) -> None:
    group = _submit(user, prompts=3, providers=["claude"])
    assert queue_length("claude") == 3
    _empty_queue("claude")  # e.g. Redis restarted empty, or a consumer died holding them

    assert not recovery_sweep().requeued, "not overdue yet: the consumers may simply be busy"
    report = recovery_sweep(now=_later(WINDOW + 1))

    assert report.requeued == {"claude": 3}
    assert sorted(_queued_item_ids("claude")) == sorted(JobItem.objects.filter(group=group).values_list("id", flat=True))
    # Pushed once per window at most: the next sweep sees it was just pushed again.
    assert not recovery_sweep(now=_later(WINDOW + 2)).requeued


def test_overdue_queued_item_waits_behind_a_backlog_until_patience_runs_out(user) -> None:
    group = _submit(user, prompts=3, providers=["perplexity"])
    lost = JobItem.objects.filter(group=group).order_by("id").first()
    # Two messages are still waiting in the queue; the third (ours) was lost.
    huey = huey_for("perplexity")
    waiting = queue_messages("perplexity")
    kept = [m for m in waiting if huey.deserialize_task(m).args[0].item_id != lost.id]
    _empty_queue("perplexity")
    for message in kept:
        huey.storage.enqueue(message)

    assert not recovery_sweep(now=_later(WINDOW * 2)).requeued, "a backlog is probably the item itself"
    assert queue_length("perplexity") == 2

    report = recovery_sweep(now=_later(WINDOW * (BACKLOG_PATIENCE_WINDOWS + 1)))
    assert report.requeued["perplexity"] >= 1
    assert lost.id in _queued_item_ids("perplexity")


def test_item_whose_worker_is_lost_too_often_fails(user, settings) -> None:
    group = _submit(user, prompts=2, providers=["chatgpt"])
    doomed, healthy = JobItem.objects.filter(group=group).order_by("id")
    _empty_queue("chatgpt")
    answer_record(item=QueuedItem.of(healthy), backend="simulated", error="no")
    _mark_running(doomed, heartbeat_age=WINDOW + 5, attempts=settings.AGENT_MAX_ATTEMPTS + EXTRA_LOSSES_ALLOWED)

    report = recovery_sweep()

    assert report.lost_too_often == 1 and not report.requeued
    doomed.refresh_from_db()
    assert doomed.status == JobItem.Status.FAILED
    assert "lost" in doomed.error and "giving up" in doomed.error
    assert queue_length("chatgpt") == 0
    # The group ends: its last item failed, so it closes and the live object says so.
    closed = wait_for_group_closed(group.id, timeout=1)
    assert closed.status == JobGroup.Status.COMPLETED
    assert progress.progress_read_live(group.id)["stats"]["failedResponses"] == 2


# --- the deadline ---

def test_deadline_fails_unfinished_items_and_closes_the_group(user, api, settings) -> None:
    settings.AGENT_GROUP_DEADLINE_SECONDS = 600
    group = _submit(user, prompts=3, providers=["chatgpt", "gemini"])
    answered = JobItem.objects.filter(group=group, provider="chatgpt").order_by("id").first()
    answer_record(item=QueuedItem.of(answered), backend="simulated",
                  answer=_answer())
    running = JobItem.objects.filter(group=group, provider="gemini").order_by("id").first()
    _mark_running(running, heartbeat_age=1)

    assert recovery_sweep(now=_later(599)).deadline_failed == 0
    report = recovery_sweep(now=_later(601))

    assert report.deadline_failed == 5
    assert report.groups_closed == 1
    group.refresh_from_db()
    assert group.status == JobGroup.Status.COMPLETED and group.finished_at
    items = JobItem.objects.filter(group=group)
    assert items.count() == 6
    assert items.filter(status=JobItem.Status.OK).count() == 1
    assert all("deadline exceeded" in e for e in items.filter(status="failed").values_list("error", flat=True))
    assert JobGroupProvider.objects.get(group=group, provider="gemini").status == "failed"
    assert "deadline exceeded" in JobGroupProvider.objects.get(group=group, provider="gemini").error
    body = api.get(f"/api/runs/{group.id}/status/").json()
    assert body["status"] == "completed"
    assert body["response"]["stats"] == {
        "totalPrompts": 3, "expectedResponses": 6, "samples": 1, "actualResponses": 1,
        "failedResponses": 5, "cancelledResponses": 0,
    }
    assert "deadline exceeded" in body["response"]["error"]
    # The worker that was still running the item finishes late: its answer is dropped, not counted.
    assert answer_record(item=QueuedItem.of(running), backend="simulated",
                         answer=_answer()) is False


# --- the progress object is reconciled with the rows ---

def test_count_lost_between_database_and_redis_is_reconciled(user, api) -> None:
    group = _submit(user, prompts=2, providers=["claude"])
    first, second = JobItem.objects.filter(group=group).order_by("id")
    # The worker wrote the row, then died (or Redis failed) before counting it.
    JobItem.objects.filter(id=first.id).update(status=JobItem.Status.OK, text="answer", finished_at=timezone.now())
    assert progress.progress_read_live(group.id)["stats"]["actualResponses"] == 0

    report = recovery_sweep()

    assert report.progress_rebuilt == 1
    live = progress.progress_read_live(group.id)
    assert live["stats"]["actualResponses"] == 1 and live["status"] == "pending"
    assert recovery_sweep().progress_rebuilt == 0, "nothing more to merge"

    JobItem.objects.filter(id=second.id).update(status=JobItem.Status.OK, text="answer", finished_at=timezone.now())
    report = recovery_sweep()
    assert report.groups_closed == 1
    group.refresh_from_db()
    assert group.status == JobGroup.Status.COMPLETED
    assert group.progress["stats"]["actualResponses"] == 2
    assert api.get(f"/api/runs/{group.id}/status/").json()["response"]["providers"] == {"claude": "completed"}


def test_redis_restarted_empty_progress_is_rebuilt_and_items_requeued(user, api) -> None:
    group = _submit(user, prompts=4, providers=["chatgpt", "perplexity"])
    items = list(JobItem.objects.filter(group=group).order_by("id"))
    for item in items[:3]:
        answer_record(item=QueuedItem.of(item), backend="simulated", error="x")
    _mark_running(items[3], heartbeat_age=WINDOW + 5)
    redis_client().flushdb()

    # Redis is back but empty: the status API still answers, from the database.
    mid = api.get(f"/api/runs/{group.id}/status/").json()
    assert mid["status"] == "pending" and mid["response"]["stats"]["failedResponses"] == 3

    report = recovery_sweep(now=_later(WINDOW + 1))

    assert sum(report.requeued.values()) == 5  # the running one and the 4 never started
    assert len(_queued_item_ids("chatgpt")) + len(_queued_item_ids("perplexity")) == 5
    live = progress.progress_read_live(group.id)
    assert live["stats"]["failedResponses"] == 3 and live["stats"]["expectedResponses"] == 8


# --- one sweep per interval ---

def test_two_sweepers_in_the_same_interval_sweep_once(user) -> None:
    group = _submit(user, prompts=1, providers=["gemini"])
    JobItem.objects.filter(group=group).update(status=JobItem.Status.OK, text="a", finished_at=timezone.now())
    first, second = RecoverySweeper(), RecoverySweeper()

    report = first.tick(30.0)
    assert report is not None and report.groups_closed == 1
    assert second.tick(30.0) is None
    assert first.tick(30.0) is None, "the lock lives one interval, whoever holds it"


def test_sweeper_sweeps_again_after_the_interval(user) -> None:
    first, second = RecoverySweeper(), RecoverySweeper()
    assert first.tick(2.0) is not None
    assert second.tick(2.0) is None
    time.sleep(2.2)
    assert second.tick(2.0) is not None


def test_sweeper_skips_quietly_while_redis_is_down(user, settings) -> None:
    group = _submit(user, prompts=1, providers=["claude"])
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    queues_reset()
    try:
        assert RecoverySweeper().tick(30.0) is None
    finally:
        settings.REDIS_URL = _session_redis_url()
        queues_reset()
    assert JobItem.objects.get(group=group).status == JobItem.Status.QUEUED


def test_sweeper_thread_runs_the_sweep(user, settings) -> None:
    settings.AGENT_RECOVERY_INTERVAL = 0.2
    group = _submit(user, prompts=1, providers=["gemini"])
    JobItem.objects.filter(group=group).update(status=JobItem.Status.OK, text="a", finished_at=timezone.now())
    sweeper = RecoverySweeper()
    sweeper.start()
    try:
        closed = wait_for_group_closed(group.id, timeout=10)
    finally:
        sweeper.stop_event.set()
        sweeper.join(5)
    assert closed.status == JobGroup.Status.COMPLETED


# --- cancelled groups ---

def test_lost_items_of_a_cancelled_group_are_cancelled_not_run_again(user) -> None:
    group = _submit(user, prompts=3, providers=["chatgpt"])
    lost, done, _ = JobItem.objects.filter(group=group).order_by("id")
    _mark_running(lost, heartbeat_age=1)
    answer_record(item=QueuedItem.of(done), backend="simulated", answer=_answer())
    job_group_cancel(group=group)
    _empty_queue("chatgpt")
    JobItem.objects.filter(id=lost.id).update(heartbeat_at=timezone.now() - timedelta(seconds=WINDOW + 5))

    report = recovery_sweep()

    assert not report.requeued
    lost.refresh_from_db()
    assert lost.status == JobItem.Status.CANCELLED
    closed = wait_for_group_closed(group.id, timeout=1)
    assert closed.status == JobGroup.Status.CANCELLED
    assert closed.progress["stats"] == {
        "totalPrompts": 3, "expectedResponses": 3, "samples": 1, "actualResponses": 1,
        "failedResponses": 0, "cancelledResponses": 2,
    }


# --- redelivery and bad payloads are dropped ---

class _MustNotBeAsked:
    backend = "simulated"

    def ask(self, prompt: str):
        raise AssertionError("the provider was asked again")


def test_redelivered_message_for_a_running_or_finished_item_is_dropped(user, monkeypatch) -> None:
    group = _submit(user, prompts=2, providers=["chatgpt"])
    running, finished = JobItem.objects.filter(group=group).order_by("id")
    _mark_running(running, heartbeat_age=1)
    answer_record(item=QueuedItem.of(finished), backend="simulated", answer=_answer())
    monkeypatch.setattr("agent.services.items.provider_for", lambda provider_id: _MustNotBeAsked())

    item_run(item=QueuedItem.of(running))
    item_run(item=QueuedItem.of(finished))

    running.refresh_from_db()
    finished.refresh_from_db()
    assert (running.status, running.attempts) == ("running", 1)
    assert (finished.status, finished.attempts, finished.text) == ("ok", 0, "answer")
    assert progress.progress_read_live(group.id)["stats"]["actualResponses"] == 1


def test_the_same_message_delivered_twice_runs_the_item_once(user) -> None:
    group = _submit(user, prompts=1, providers=["claude"])
    item = JobItem.objects.get(group=group)
    huey = huey_for("claude")
    message = queue_messages("claude")[0]

    for _ in range(2):
        huey.execute(huey.deserialize_task(message))

    item.refresh_from_db()
    assert (item.status, item.attempts) == ("ok", 1)
    group = wait_for_group_closed(group.id, timeout=1)
    assert group.progress["stats"]["actualResponses"] == 1


@pytest.mark.parametrize("payload", ["x", None, True, 1.5, [1], {"item_id": 1}])
def test_task_drops_a_payload_of_the_wrong_shape(payload, caplog) -> None:
    huey, task = huey_for("chatgpt"), item_run_task("chatgpt")
    with caplog.at_level(logging.ERROR, logger="agent.tasks"):
        task.func(payload)
        huey.execute(task.s(payload))
    assert "malformed payload" in caplog.text
    assert huey.scheduled_count() == 0, "a malformed payload is not retried"


def test_task_for_an_item_whose_group_was_deleted_is_dropped(user, caplog) -> None:
    group = _submit(user, prompts=2, providers=["gemini"])
    item_ids = list(JobItem.objects.filter(group=group).values_list("id", flat=True))
    JobGroup.objects.filter(id=group.id).delete()
    huey, task = huey_for("gemini"), item_run_task("gemini")

    with caplog.at_level(logging.WARNING, logger="agent.services.items"):
        task.func(item_ids[0])
        huey.execute(task.s(QueuedItem(item_ids[1], str(group.id), "gemini")))

    assert "no longer exists" in caplog.text
    assert huey.scheduled_count() == 0
    assert recovery_sweep(now=_later(WINDOW * 100)).requeued == {}


def test_task_for_an_item_of_another_queue_is_dropped(user, caplog) -> None:
    group = _submit(user, prompts=1, providers=["gemini"])
    item = JobItem.objects.get(group=group)
    with caplog.at_level(logging.ERROR, logger="agent.services.items"):
        item_run_task("chatgpt").func(item.id)
    assert "not to the chatgpt queue" in caplog.text
    item.refresh_from_db()
    assert item.status == JobItem.Status.QUEUED


def test_database_unavailable_in_the_worker_is_retried_later_not_lost(user, monkeypatch, settings) -> None:
    # The worker first waits the outage out in its thread; past this patience the task goes back to Huey.
    settings.AGENT_DB_OUTAGE_SECONDS = 1.0
    group = _submit(user, prompts=1, providers=["perplexity"])
    item = JobItem.objects.get(group=group)
    huey = huey_for("perplexity")
    message = huey.storage.dequeue()  # a worker popped it...

    def database_away(**kwargs) -> None:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("agent.services.items.item_run", database_away)
    huey.execute(huey.deserialize_task(message))  # ...and the database was away

    assert huey.scheduled_count() == 1, "Huey retries the task after a delay"
    item.refresh_from_db()
    assert item.status == JobItem.Status.QUEUED

    # Even if every retry fails too, the row is still queued, so the sweep pushes it again.
    huey.flush()
    monkeypatch.undo()
    assert recovery_sweep(now=_later(WINDOW + 1)).requeued == {"perplexity": 1}
    huey.execute(huey.deserialize_task(huey.storage.dequeue()))
    item.refresh_from_db()
    assert (item.status, item.attempts) == ("ok", 1)


# --- heartbeats ---

def test_heartbeat_keeps_a_long_running_item_from_being_recovered(user, settings, monkeypatch) -> None:
    settings.AGENT_RECOVERY_SECONDS = 2.0  # a beat every 0.5 s
    # The process's beating thread may be asleep for an earlier test's longer interval: start ours.
    monkeypatch.setattr(heartbeat, "_thread", None)
    group = _submit(user, prompts=1, providers=["chatgpt"])
    item = JobItem.objects.get(group=group)
    _mark_running(item, heartbeat_age=60)  # as if the call had been running for a minute already

    with heartbeat.beating(item.id):
        time.sleep(2.5)
        item.refresh_from_db()
        assert timezone.now() - item.heartbeat_at < timedelta(seconds=2)
        assert not recovery_sweep().requeued
    assert heartbeat.heartbeat_once() == 0, "a finished block stops beating"


def test_heartbeat_once_refreshes_only_running_items(user) -> None:
    group = _submit(user, prompts=2, providers=["gemini"])
    running, queued = JobItem.objects.filter(group=group).order_by("id")
    _mark_running(running, heartbeat_age=600)
    with heartbeat.beating(running.id), heartbeat.beating(queued.id):
        assert heartbeat.heartbeat_once() == 1
    running.refresh_from_db()
    queued.refresh_from_db()
    assert timezone.now() - running.heartbeat_at < timedelta(seconds=5)
    assert queued.heartbeat_at is None


def _answer():
    from agent.providers.base import Answer

    return Answer(text="answer", sources=[], usage={}, latency_ms=1, model="simulated-test")


def _session_redis_url() -> str:
    import os

    return os.environ["REDIS_URL"]


def test_sweep_of_an_idle_database_does_nothing() -> None:
    assert not recovery_sweep()
