"""The per-provider rate limit as a provider sees it: two consumer processes share one limit."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.utils import timezone

from agent.models import JobItem
from prompts.models import Prompt
from tests.agent.providers.fake_servers import FakeProviderServer
from tests.factories import wait_for_status, workspace_with_prompts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

KEY = "sk-ratelimit-fake-key-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer("chatgpt", api_key=KEY).start()
    yield server
    server.stop()


def limited_env(fake: FakeProviderServer, *, limit: int, window: float) -> dict[str, str]:
    return {
        "AGENT_PROVIDER_BACKEND": "live", "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url,
        "AGENT_RATE_LIMIT_CHATGPT": str(limit), "AGENT_RATE_LIMIT_WINDOW_SECONDS": str(window),
        "DJANGO_LOG_LEVEL": "INFO",
    }


def most_in_any_window(arrivals: list[float], window: float) -> int:
    """The most requests that arrived within any half-open interval of `window` seconds."""
    arrivals = sorted(arrivals)
    most, start = 0, 0
    for end, arrived in enumerate(arrivals):
        while arrived - arrivals[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_two_consumers_together_never_exceed_the_providers_rate_limit(
    api, user, consumers, fake: FakeProviderServer, capsys
) -> None:
    limit, window, prompts = 5, 2.0, 30
    workspace = workspace_with_prompts(user=user, prompts=prompts, providers=["chatgpt"])
    env = limited_env(fake, limit=limit, window=window)
    consumers.start("chatgpt", workers=4, **env)
    consumers.start("chatgpt", workers=4, **env)

    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    # While the group runs, items over the limit wait on the queue with a due time, visibly.
    waiting_seen = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        waiting_seen = max(waiting_seen, JobItem.objects.filter(
            group_id=group_id, status="queued", attempts=0, next_attempt_at__gt=timezone.now(),
            error__contains="waiting for the rate limit",
        ).count())
        if api.get(f"/api/runs/{group_id}/status/").json()["status"] == "completed":
            break
        time.sleep(0.1)
    wait_for_status(api, group_id, timeout=5, logs=consumers.logs)

    items = JobItem.objects.filter(group_id=group_id)
    assert set(items.values_list("status", flat=True)) == {"ok"}
    assert set(items.values_list("attempts", flat=True)) == {1}  # waiting for the limit spends no attempt
    requests = fake.requests
    assert len(requests) == prompts  # waiting items were not asking the provider in a loop
    asked = sorted(Prompt.objects.filter(workspace=workspace).values_list("text", flat=True))
    assert sorted(r["prompt"] for r in requests) == asked
    assert waiting_seen >= prompts - 2 * limit

    logs = [path.read_text(errors="replace") for path in sorted(consumers.tmp_path.glob("consumer-chatgpt-*.log"))]
    assert len(logs) == 2 and all(" chatgpt run " in log and "answered in" in log for log in logs)  # both served items

    arrivals = sorted(r["at"] for r in requests)
    most = most_in_any_window(arrivals, window)
    span = arrivals[-1] - arrivals[0]
    requeues = sum(log.count("waiting for the rate limit") for log in logs)
    with capsys.disabled():
        print(f"\n  rate limit {limit}/{window:g} s, {prompts} items, 2 consumers x 4 workers: "
              f"most requests in any {window:g} s window {most}; span {span:.2f} s; "
              f"achieved {(prompts - 1) / span:.2f} req/s (limit {limit / window:.2f} req/s); "
              f"most items seen waiting at once {waiting_seen}; rate-limit requeues {requeues}")
    assert most <= limit, "arrivals (s): " + " ".join(f"{a - arrivals[0]:.3f}" for a in arrivals)
    assert span >= (prompts / limit - 1) * window


def test_an_inline_retry_also_waits_for_the_rate_limit(api, user, consumers, fake: FakeProviderServer, capsys) -> None:
    # Two slots per 2 s and two items: both go at once, one is told to come back in 1 s. Its
    # retry is a third request to the provider inside the window unless it takes a slot too.
    limit, window = 2, 2.0
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    first = Prompt.objects.filter(workspace=workspace).order_by("id").values_list("text", flat=True)[0]
    fake.script_prompt(first, [{"kind": "rate_limited", "retry_after": 1}])
    consumers.start("chatgpt", workers=2, **limited_env(fake, limit=limit, window=window))

    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    wait_for_status(api, group_id, timeout=20, logs=consumers.logs)

    item = JobItem.objects.get(group_id=group_id, prompt_text=first)
    assert (item.status, item.attempts) == ("ok", 2)
    arrivals = [r["at"] for r in fake.requests]
    with capsys.disabled():
        print(f"\n  inline retry under a {limit}/{window:g} s limit: arrivals "
              f"{[round(a - arrivals[0], 2) for a in arrivals]}, most in a window {most_in_any_window(arrivals, window)}")
    assert most_in_any_window(arrivals, window) <= limit
