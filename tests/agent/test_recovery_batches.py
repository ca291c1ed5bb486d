"""The recovery sweep at scale and across an outage, in-process: bounded batches, a fair share, held results."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from agent.connections import redis_client
from agent.held_results import ItemResult, held_key, held_result_put
from agent.models import JobGroup, JobItem
from agent.providers.base import Answer
from agent.queues import queue_key, queue_messages
from agent.recovery import BACKLOG_PATIENCE_WINDOWS, recovery_sweep
from agent.services.items import item_run
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem, consumer_huey, item_messages_push_on
from oneglanse.database_outage import database_outage_wait_out
from tests.backlog import lost_backlog
from tests.factories import workspace_with_prompts
from tests.sqlite_stock_limits import SQLITE_STOCK_VARIABLE_LIMIT

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 60.0


@pytest.fixture(autouse=True)
def _knobs(settings) -> None:
    settings.AGENT_RECOVERY_SECONDS = WINDOW
    settings.AGENT_SIMULATED_LATENCY_MS = 0
    settings.AGENT_SIMULATED_FAILURE_RATE = "0"


def _later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def _popped(provider: str) -> list[int]:
    """Take every waiting message off a queue; their item ids in the order the consumers would take them."""
    huey = consumer_huey(provider)  # its task registered, so messages decode
    messages = queue_messages(provider)
    redis_client().delete(queue_key(provider))
    return [huey.deserialize_task(message).args[0].item_id for message in messages]


def _kept_answer(item: JobItem) -> ItemResult:
    answer = Answer(text="the answer received before the outage", sources=[], usage={"total_tokens": 7},
                    latency_ms=5, model="kept-model")
    return ItemResult(item=QueuedItem.of(item), backend="live", answer=answer)


def test_a_sweep_over_more_lost_items_than_sqlite_binds_puts_them_all_back(settings) -> None:
    settings.AGENT_RECOVERY_BATCH = 100_000
    backlog, lost = lost_backlog(runs=34, prompts=1000, lost_at=timezone.now() - timedelta(hours=1))
    assert lost > SQLITE_STOCK_VARIABLE_LIMIT

    report = recovery_sweep()

    assert report.requeued == {"chatgpt": lost}
    assert len(set(_popped("chatgpt"))) == lost
    assert not JobItem.objects.filter(group__workspace=backlog, next_attempt_at__lt=_later(-60)).exists()


def test_a_small_workspace_is_served_in_the_first_sweep_beside_a_backlog_larger_than_the_budget(user, settings) -> None:
    settings.AGENT_RECOVERY_BATCH = 100
    backlog, lost = lost_backlog(runs=3, prompts=100, lost_at=timezone.now() - timedelta(hours=1))
    small = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"]), user=user)
    small_items = set(JobItem.objects.filter(group=small.job_group).values_list("id", flat=True))
    _popped("chatgpt")  # Redis lost every message

    first = recovery_sweep(now=_later(WINDOW + 1))
    pushed = _popped("chatgpt")
    assert first.requeued == {"chatgpt": 100}
    # One workspace after the other on the queue: the small run's items are not behind the backlog.
    assert small_items <= set(pushed[:4]), pushed[:4]

    served = set(pushed)
    for sweep in range(2, 6):  # the consumers answer what was pushed; the next sweeps bring the rest
        JobItem.objects.filter(id__in=pushed).update(status=JobItem.Status.OK, text="answered")
        recovery_sweep(now=_later(WINDOW * sweep))
        pushed = _popped("chatgpt")
        served |= set(pushed)
    assert len(served) == lost + 2, "every lost item was put back within a few sweeps"


def test_the_sweep_records_a_held_result_instead_of_asking_the_provider_again(user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"]), user=user).job_group
    item = JobItem.objects.get(group=group)
    _popped("chatgpt")
    JobItem.objects.filter(id=item.id).update(status=JobItem.Status.RUNNING, attempts=1,
                                              heartbeat_at=_later(-WINDOW - 30))
    assert held_result_put(_kept_answer(item))  # its worker got the answer, then the database went away

    report = recovery_sweep()

    item.refresh_from_db()
    assert (item.status, item.text, item.model, item.attempts) == ("ok", "the answer received before the outage", "kept-model", 1)
    assert report.held_recorded == 1 and not report.requeued and _popped("chatgpt") == []
    assert redis_client().get(held_key(item.id)) is None
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.COMPLETED


def test_a_worker_records_a_held_result_of_a_recovered_item_instead_of_asking_again(user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=1, providers=["gemini"]), user=user).job_group
    item = JobItem.objects.get(group=group)
    # Its first worker received the answer and died before the database took it; the sweep put it back.
    JobItem.objects.filter(id=item.id).update(attempts=1)
    held_result_put(_kept_answer(item))

    item_run(item=QueuedItem.of(item))

    item.refresh_from_db()
    assert (item.status, item.text, item.attempts, item.backend) == ("ok", "the answer received before the outage", 1, "live")
    assert redis_client().get(held_key(item.id)) is None


def test_waiting_out_an_outage_retries_until_the_database_answers() -> None:
    failures = []
    tries = iter([OperationalError("the database system is starting up"), OperationalError("connection refused"), None])

    def operation() -> str:
        error = next(tries)
        if error:
            raise error
        return "recorded"

    assert database_outage_wait_out(operation, patience=30, what="test", on_failure=failures.append) == "recorded"
    assert [str(e) for e in failures] == ["the database system is starting up", "connection refused"]


def test_waiting_out_an_outage_gives_up_after_its_patience() -> None:
    def operation() -> None:
        raise OperationalError("could not connect to server")

    with pytest.raises(OperationalError):
        database_outage_wait_out(operation, patience=1, what="test")


def test_items_never_put_back_go_before_items_still_waiting_behind_a_long_queue(settings) -> None:
    settings.AGENT_RECOVERY_BATCH = 100
    lost_backlog(runs=1, prompts=300, lost_at=timezone.now() - timedelta(hours=1))
    recovery_sweep()
    first = set(_popped("chatgpt"))
    pipeline = redis_client().pipeline()
    item_messages_push_on(pipeline, provider_id="chatgpt", items=[QueuedItem(0, "", "chatgpt")])  # a long queue
    pipeline.execute()

    # Much later, the first hundred are overdue again (still queued), but the other two hundred longer.
    recovery_sweep(now=_later(WINDOW * (BACKLOG_PATIENCE_WINDOWS + 1)))
    second = set(_popped("chatgpt")) - {0}
    assert len(first) == len(second) == 100 and not first & second
