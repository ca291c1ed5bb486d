"""Queue operations in-process: the staff-only API, pause and its effects, the command, /metrics, metering."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from agent import progress
from agent.connections import redis_client
from agent.metrics import TOTALS_KEY, duration_bucket, quantile_ms
from agent.models import JobItem, ProviderQueue
from agent.queue_ops import PAUSED_KEY, paused_cache, queue_overview_list, queue_pause, queue_resume
from agent.queues import huey_for
from agent.recovery import BACKLOG_PATIENCE_WINDOWS, recovery_sweep
from agent.services.items import answer_record, item_run
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from tests.factories import workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE_KEYS = {"provider", "queue", "paused", "paused_by", "waiting", "scheduled", "running", "consumers", "workers", "last_hour"}


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="ops", password="x" * 12, is_staff=True)


@pytest.fixture
def staff_api(staff) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.fixture(autouse=True)
def _knobs(settings) -> None:
    settings.AGENT_RECOVERY_SECONDS = 60.0
    settings.AGENT_SIMULATED_LATENCY_MS = 0
    settings.AGENT_SIMULATED_FAILURE_RATE = "0"
    settings.AGENT_METRICS_TOKEN = ""
    paused_cache.__init__()  # a fresh process's view


def _submit(user, *, prompts: int, providers: list[str]):
    workspace = workspace_with_prompts(user=user, prompts=prompts, providers=providers)
    return job_group_submit(workspace=workspace, user=user).job_group


def test_queue_api_lists_every_provider_queue_for_staff(staff_api, user) -> None:
    _submit(user, prompts=3, providers=["chatgpt", "gemini"])
    body = staff_api.get("/api/queues/").json()
    assert body["count"] == 4 and [q["provider"] for q in body["results"]] == ["chatgpt", "perplexity", "gemini", "claude"]
    chatgpt = body["results"][0]
    assert QUEUE_KEYS <= set(chatgpt)
    assert (chatgpt["queue"], chatgpt["waiting"], chatgpt["paused"]) == ("oneglanse-agent-chatgpt", 3, False)
    assert chatgpt["consumers"] == 0
    assert chatgpt["last_hour"] == {"ok": 0, "failed": 0, "p50_ms": None, "p95_ms": None}


@pytest.mark.parametrize("path", ["/api/queues/", "/api/queues/chatgpt/pause/", "/api/queues/chatgpt/resume/"])
def test_queue_api_is_404_for_anyone_but_staff(api, path) -> None:
    method = api.get if path == "/api/queues/" else api.post
    assert method(path).status_code == 404
    assert (APIClient().get if path == "/api/queues/" else APIClient().post)(path).status_code == 404
    assert not ProviderQueue.objects.filter(paused=True).exists()


def test_pause_and_resume_through_the_api_say_who_paused(staff_api) -> None:
    paused = staff_api.post("/api/queues/gemini/pause/")
    assert paused.status_code == 200
    assert (paused.json()["provider"], paused.json()["paused"], paused.json()["paused_by"]) == ("gemini", True, "ops")
    assert redis_client().hget(PAUSED_KEY, "gemini") == b"ops"
    resumed = staff_api.post("/api/queues/gemini/resume/").json()
    assert (resumed["paused"], resumed["paused_by"]) == (False, None)
    assert staff_api.post("/api/queues/bard/pause/").status_code == 404


def test_a_paused_item_taken_by_a_stale_consumer_goes_back_on_its_queue_unstarted(user) -> None:
    group = _submit(user, prompts=2, providers=["chatgpt"])
    queue = huey_for("chatgpt").storage.queue_key
    redis_client().delete(queue)  # as if a consumer had popped both messages just before the pause
    queue_pause(provider_id="chatgpt", user=user)
    assert not paused_cache.is_paused("chatgpt")  # this process has not refreshed its view yet
    for item in JobItem.objects.filter(group=group):
        item_run(item=QueuedItem.of(item))
    assert set(JobItem.objects.filter(group=group).values_list("status", "attempts")) == {("queued", 0)}
    assert redis_client().zcard(queue) == 2
    assert paused_cache.is_paused("chatgpt")  # the claim told the dequeue gate at once


def test_the_sweep_does_not_count_items_of_a_paused_queue_as_lost(user) -> None:
    group = _submit(user, prompts=3, providers=["claude"])
    queue_pause(provider_id="claude", user=user)
    far = timezone.now() + timedelta(seconds=60 * (BACKLOG_PATIENCE_WINDOWS + 5))
    report = recovery_sweep(now=far)
    assert report.requeued == {} and redis_client().zcard(huey_for("claude").storage.queue_key) == 3
    queue_resume(provider_id="claude", user=user)
    # Just resumed: the queue gets a full patience period again before anything counts as lost.
    assert recovery_sweep(now=timezone.now() + timedelta(seconds=120)).requeued == {}
    assert JobItem.objects.filter(group=group, status="queued").count() == 3


def test_the_deadline_says_queue_paused_when_it_ends_a_paused_item(user, settings) -> None:
    settings.AGENT_GROUP_DEADLINE_SECONDS = 600.0
    group = _submit(user, prompts=2, providers=["chatgpt", "gemini"])
    queue_pause(provider_id="gemini", user=user)
    recovery_sweep(now=timezone.now() + timedelta(seconds=700))
    errors = dict(JobItem.objects.filter(group=group).values_list("provider", "error").distinct())
    assert "queue paused" in errors["gemini"] and "gemini" in errors["gemini"]
    assert "queue paused" not in errors["chatgpt"] and "deadline exceeded" in errors["chatgpt"]


def test_queue_command_pauses_resumes_and_shows_status(user) -> None:
    out = StringIO()
    call_command("queue", "pause", "perplexity", "--user", "alice", stdout=out)
    assert "Paused perplexity" in out.getvalue() and "paused by alice" in out.getvalue()
    out = StringIO()
    call_command("queue", "status", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "paused by alice" in lines[1] and "running" in lines[0]
    call_command("queue", "resume", "perplexity", stdout=StringIO())
    assert not ProviderQueue.objects.get(provider="perplexity").paused
    with pytest.raises(CommandError, match="Unknown provider"):
        call_command("queue", "pause", "bard")


def test_run_status_and_page_say_paused_for_that_provider(user, api, client) -> None:
    group = _submit(user, prompts=1, providers=["chatgpt", "claude"])
    queue_pause(provider_id="claude", user=user)
    paused_cache.__init__()
    body = api.get(f"/api/runs/{group.id}/status/").json()
    assert body["paused_providers"] == ["claude"]
    client.force_login(user)
    page = client.get(f"/runs/{group.id}/").content.decode()
    assert 'data-provider="claude"' in page and "queue paused" in page.lower()


def test_metering_counts_an_item_once_whatever_delivers_it(user) -> None:
    group = _submit(user, prompts=2, providers=["chatgpt"])
    first, second = JobItem.objects.filter(group=group).order_by("id").values_list("id", flat=True)
    JobItem.objects.filter(id=first).update(status="running")
    from agent.providers.base import Answer

    answer = Answer(text="hi", sources=[], usage={}, latency_ms=420, model="m")
    assert answer_record(item=QueuedItem(first, str(group.id), "chatgpt"), backend="simulated", answer=answer)
    progress.progress_item_finished(group_id=group.id, item_id=first, provider="chatgpt", status="ok")  # redelivered
    JobItem.objects.filter(id=second).update(status="failed", error="boom", finished_at=timezone.now())
    progress.progress_rebuild(group.id)  # the sweep's merge counts the second
    progress.progress_rebuild(group.id)
    totals = {k.decode(): v.decode() for k, v in redis_client().hgetall(TOTALS_KEY).items()}
    assert totals["n:chatgpt:ok"] == "1" and totals["n:chatgpt:failed"] == "1"
    assert totals[f"b:chatgpt:{duration_bucket(0.42)}"] == "1" and float(totals["s:chatgpt"]) == pytest.approx(0.42)
    assert queue_overview_list()[0].last_hour.ok == 1


def test_metering_survives_the_progress_object_expiring(user) -> None:
    group = _submit(user, prompts=2, providers=["gemini"])
    first, second = JobItem.objects.filter(group=group).order_by("id").values_list("id", flat=True)
    JobItem.objects.filter(id=first).update(status="running")
    answer_record(item=QueuedItem(first, str(group.id), "gemini"), backend="simulated", error="boom")
    redis_client().delete(progress.progress_key(group.id))  # expired after an hour's pause
    JobItem.objects.filter(id=second).update(status="running")
    answer_record(item=QueuedItem(second, str(group.id), "gemini"), backend="simulated", error="boom again")
    assert redis_client().hget(TOTALS_KEY, "n:gemini:failed") == b"2"
    assert progress.progress_read_live(group.id)["failed"] == {"gemini": 2}


def test_quantiles_interpolate_within_their_bucket() -> None:
    assert quantile_ms({}, 0.5) is None
    assert quantile_ms({"0.5": 10}, 0.5) == 375  # halfway between 0.25 and 0.5 s
    assert quantile_ms({"0.1": 95, "10": 5}, 0.95) == 100


def test_metrics_need_the_bearer_token_when_one_is_set(client, settings) -> None:
    settings.AGENT_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    denied = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert denied.status_code == 401 and denied["WWW-Authenticate"].startswith("Bearer")
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200
    names = {family.name for family in text_string_to_metric_families(ok.content.decode())}
    assert {"oneglanse_queue_waiting", "oneglanse_queue_running", "oneglanse_queue_paused", "oneglanse_consumers",
            "oneglanse_items_finished", "oneglanse_item_duration_seconds"} <= names


def test_admin_action_pauses_and_resumes_the_selected_queues(client, django_user_model) -> None:
    admin = django_user_model.objects.create_superuser(username="root", password="x" * 12)
    client.force_login(admin)
    page = client.get("/admin/agent/providerqueue/")
    assert page.status_code == 200 and "chatgpt" in page.content.decode()
    client.post("/admin/agent/providerqueue/", {"action": "queues_pause", "_selected_action": ["chatgpt", "claude"]})
    assert set(ProviderQueue.objects.filter(paused=True).values_list("provider", "paused_by__username")) == {
        ("chatgpt", "root"), ("claude", "root")}
    client.post("/admin/agent/providerqueue/", {"action": "queues_resume", "_selected_action": ["claude"]})
    assert set(ProviderQueue.objects.filter(paused=True).values_list("provider", flat=True)) == {"chatgpt"}
