"""Whole groups in live mode: real consumers ask local fakes of the four providers' HTTP APIs.

The fakes run as threads of the test process; the consumers (subprocesses) reach them over
127.0.0.1 through the providers' *_BASE_URL variables, exactly as they would reach the real APIs.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from django.utils import timezone

from agent.models import JobGroup, JobGroupProvider, JobItem
from agent.services.items import INLINE_RETRY_MAX_SECONDS
from prompts.models import Prompt
from tests.agent.providers.fake_servers import FakeProviderServer, answer_text, expected_sources
from tests.factories import ALL_PROVIDERS, wait_for_group_closed, wait_for_status, workspace_with_prompts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

KEYS = {provider: f"sk-live-{provider}-fake-key-0123456789abcdef" for provider in ALL_PROVIDERS}
VARIABLES = {  # provider -> (key, base URL, model) variables
    "chatgpt": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"),
    "perplexity": ("PERPLEXITY_API_KEY", "PERPLEXITY_BASE_URL", "PERPLEXITY_MODEL"),
    "gemini": ("GEMINI_API_KEY", "GEMINI_BASE_URL", "GEMINI_MODEL"),
    "claude": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"),
}
CONFIGURED_MODELS = {
    "chatgpt": "gpt-4o-mini-search-preview", "perplexity": "sonar-pro",
    "gemini": "gemini-2.5-pro", "claude": "claude-opus-4-1",
}
ANSWERED_MODELS = {  # what each fake says answered: OpenAI and Anthropic add a snapshot date
    "chatgpt": "gpt-4o-mini-search-preview-2025-03-11", "perplexity": "sonar-pro",
    "gemini": "gemini-2.5-pro", "claude": "claude-opus-4-1-20250929",
}
USAGE = {  # OpenAI's convention: Gemini's tool-use prompt tokens count as prompt tokens
    "chatgpt": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46},
    "perplexity": {"prompt_tokens": 9, "completion_tokens": 21, "total_tokens": 30, "search_context_size": "low"},
    "gemini": {"prompt_tokens": 98, "completion_tokens": 40, "total_tokens": 138, "tool_use_prompt_tokens": 90},
    "claude": {"prompt_tokens": 105, "completion_tokens": 39, "total_tokens": 144, "web_search_requests": 1},
}
AUTH_HEADERS = {
    "chatgpt": ("authorization", f"Bearer {KEYS['chatgpt']}"),
    "perplexity": ("authorization", f"Bearer {KEYS['perplexity']}"),
    "gemini": ("x-goog-api-key", KEYS["gemini"]),
    "claude": ("x-api-key", KEYS["claude"]),
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProviderServer]]:
    # Each fake accepts only its provider's key: any other gets the provider's own 401.
    started = {provider: FakeProviderServer(provider, api_key=KEYS[provider]).start() for provider in ALL_PROVIDERS}
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture(autouse=True)
def _fresh_fakes(fakes: dict[str, FakeProviderServer]) -> None:
    for fake in fakes.values():
        fake.reset()


def live_env(fakes: dict[str, FakeProviderServer], **overrides: str) -> dict[str, str]:
    """A consumer environment in live mode pointed at the fakes; INFO logs, so leaks would show."""
    env = {"AGENT_PROVIDER_BACKEND": "live", "DJANGO_LOG_LEVEL": "INFO"}
    for provider, (key, base_url, model) in VARIABLES.items():
        env.update({key: KEYS[provider], base_url: fakes[provider].url, model: CONFIGURED_MODELS[provider]})
    env.update(overrides)
    return env


def submit(api, workspace) -> str:
    response = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert response.status_code == 202, response.content
    return response.json()["jobGroupId"]


def item_of(group_id: str, provider: str, prompt: str) -> JobItem:
    return JobItem.objects.get(group_id=group_id, provider=provider, prompt_text=prompt)


def arrivals(fake: FakeProviderServer, prompt: str) -> list[float]:
    return [request["at"] for request in fake.requests if request["prompt"] == prompt]


def consumer_log_text(consumers) -> str:
    # The whole of every log, not the tail that consumers.logs() keeps for failure messages.
    return "".join(path.read_text(errors="replace") for path in sorted(consumers.tmp_path.glob("consumer-*.log")))


def assert_secrets_nowhere(secrets: list[str], group_id: str, consumers, *api_bodies: object) -> None:
    """No key in any column of the group's rows, in what the API answered, or in the consumers' logs."""
    rows = [
        *JobItem.objects.filter(group_id=group_id).values(),
        *JobGroupProvider.objects.filter(group_id=group_id).values(),
        *JobGroup.objects.filter(id=group_id).values(),
    ]
    stored = json.dumps(rows, default=str)
    answered = json.dumps(api_bodies, default=str)
    logs = consumer_log_text(consumers)
    assert "Consuming oneglanse-agent-" in logs  # the logs are there to be searched
    for secret in secrets:
        assert secret not in stored
        assert secret not in answered
        assert secret not in logs


def answers(api, group_id: str) -> list[dict]:
    page = api.get(f"/api/runs/{group_id}/answers/?page_size=1000").json()
    assert page["next"] is None
    return page["results"]


def test_live_group_stores_each_providers_answer_sources_usage_and_model(
    api, user, consumers, fakes: dict[str, FakeProviderServer]
) -> None:
    workspace = workspace_with_prompts(user=user, prompts=5)
    prompts = sorted(_prompts(workspace))
    consumers.start_all(workers=4, **live_env(fakes))

    group_id = submit(api, workspace)
    status = wait_for_status(api, group_id, logs=consumers.logs)
    progress = status["response"]

    assert progress["providers"] == dict.fromkeys(ALL_PROVIDERS, "completed")
    assert progress["stats"]["actualResponses"] == 20 and progress["stats"]["failedResponses"] == 0
    results = answers(api, group_id)
    assert len(results) == 20
    for answer in results:
        provider = answer["provider"]
        assert answer["status"] == "ok", answer
        assert answer["backend"] == "live"
        assert answer["model"] == ANSWERED_MODELS[provider]
        assert answer["text"] == answer_text(provider, answer["prompt_text"])
        # url_citation / search_results / groundingChunks / citations + web_search_tool_result,
        # each with a repeated URL: normalised to one shape, de-duplicated, cited first.
        assert answer["sources"] == expected_sources(provider)
        assert answer["usage"] == USAGE[provider]
        assert answer["latency_ms"] is not None and 0 <= answer["latency_ms"] < 5000
        assert answer["attempts"] == 1 and answer["error"] == ""
    assert {(a["provider"], a["prompt_text"]) for a in results} == {(p, t) for p in ALL_PROVIDERS for t in prompts}

    for provider, fake in fakes.items():
        requests = fake.requests
        assert sorted(r["prompt"] for r in requests) == prompts  # one request per item, no retries
        header, value = AUTH_HEADERS[provider]
        for request in requests:
            assert request["headers"][header] == value
            body = request["json"]
            if provider == "chatgpt":
                assert request["path"] == "/v1/chat/completions"
                assert body["model"] == CONFIGURED_MODELS[provider] and body["web_search_options"] == {}
            elif provider == "perplexity":  # Sonar always searches: no tool to ask for
                assert request["path"] == "/chat/completions" and body["model"] == CONFIGURED_MODELS[provider]
            elif provider == "gemini":
                assert request["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
                assert body["tools"] == [{"google_search": {}}]
            else:
                assert request["path"] == "/v1/messages" and body["model"] == CONFIGURED_MODELS[provider]
                assert body["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]

    wait_for_group_closed(group_id)
    assert_secrets_nowhere(list(KEYS.values()), group_id, consumers, status, results)


def test_odd_provider_fields_and_a_paused_claude_turn_still_store_one_answer_per_paid_call(
    api, user, consumers, fakes: dict[str, FakeProviderServer]
) -> None:
    # A 5,000-character model and non-string titles once failed the item's write (varchar(200) on
    # PostgreSQL) and re-asked the provider four times; a paused Claude turn was stored as the answer.
    workspace = workspace_with_prompts(user=user, prompts=2)
    odd, paused = _prompts(workspace)
    for fake in fakes.values():
        fake.script_prompt(odd, ["odd"])
    fakes["claude"].script_prompt(paused, [{"kind": "recorded", "file": "claude_pause_turn_1.json"},
                                           {"kind": "recorded", "file": "claude_pause_turn_2.json"}])
    consumers.start_all(workers=2, **live_env(fakes))

    group_id = submit(api, workspace)
    progress = wait_for_status(api, group_id, logs=consumers.logs)["response"]

    assert progress["providers"] == dict.fromkeys(ALL_PROVIDERS, "completed")
    for provider, fake in fakes.items():
        item = item_of(group_id, provider, odd)
        assert (item.status, item.attempts, item.error) == ("ok", 1, "")
        assert len(item.model) == 200 and item.model.startswith("mmmm")
        assert all(isinstance(source["title"], str) for source in item.sources)
        assert [r["behaviour"] for r in fake.requests if r["prompt"] == odd] == ["odd"]
    claude = item_of(group_id, "claude", paused)
    assert (claude.status, claude.attempts) == ("ok", 1)
    assert claude.text.startswith("I'll run these searches for you one at a time. Let me begin:\n\n")
    assert claude.text.endswith("from February 2026.")
    assert [r["behaviour"] for r in fakes["claude"].requests if r["prompt"] == paused] == ["recorded", "recorded"]
    shown = {a["provider"]: a for a in answers(api, group_id) if a["prompt_text"] == paused}
    assert any(source["cited"] for source in shown["claude"]["sources"])
    assert any(not source["cited"] for source in shown["claude"]["sources"])


def test_rate_limited_item_waits_the_retry_after_in_the_worker_then_succeeds(
    api, user, consumers, fakes: dict[str, FakeProviderServer], capsys
) -> None:
    # Each provider says "come back in 1 s" its own way: Retry-After (OpenAI, Perplexity),
    # retry-after-ms (Anthropic), a RetryInfo in the body (Gemini).
    retry_after = 1.0
    workspace = workspace_with_prompts(user=user, prompts=2)
    first, second = _prompts(workspace)
    for fake in fakes.values():
        fake.script_prompt(first, [{"kind": "rate_limited", "retry_after": retry_after}])
    consumers.start_all(workers=2, **live_env(fakes))

    group_id = submit(api, workspace)
    progress = wait_for_status(api, group_id, logs=consumers.logs)["response"]

    assert progress["providers"] == dict.fromkeys(ALL_PROVIDERS, "completed")
    waits = {}
    for provider, fake in fakes.items():
        limited = item_of(group_id, provider, first)
        assert (limited.status, limited.attempts, limited.error) == ("ok", 2, "")
        assert limited.text == answer_text(provider, first)
        assert item_of(group_id, provider, second).attempts == 1
        requests = [r for r in fake.requests if r["prompt"] == first]
        assert [r["behaviour"] for r in requests] == ["rate_limited", "ok"]
        waits[provider] = requests[1]["at"] - requests[0]["at"]
        assert retry_after <= waits[provider] < retry_after + 1.0, waits
    with capsys.disabled():
        print(f"\n  inline retry: Retry-After {retry_after:g} s, observed waits {_rounded(waits)}")


def test_a_retry_after_beyond_the_inline_limit_puts_the_item_back_on_the_queue(
    api, user, consumers, fakes: dict[str, FakeProviderServer], capsys
) -> None:
    retry_after = INLINE_RETRY_MAX_SECONDS + 1.5
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt"])
    first, *others = _prompts(workspace)
    fake = fakes["chatgpt"]
    fake.script_prompt(first, [{"kind": "rate_limited", "retry_after": retry_after}])
    # One worker: had it slept through the wait, the other prompts would queue behind it.
    consumers.start("chatgpt", workers=1, **live_env(fakes))

    group_id = submit(api, workspace)
    waiting = _observe(lambda: item_of(group_id, "chatgpt", first), lambda item: item.status == "queued"
                       and item.attempts == 1 and item.next_attempt_at is not None
                       and item.next_attempt_at > timezone.now(), timeout=15, logs=consumers.logs)
    ahead = _seconds_from_now(waiting.next_attempt_at)
    assert "HTTP 429" in waiting.error and waiting.error.startswith("chatgpt: ")
    assert api.get(f"/api/runs/{group_id}/status/").json()["status"] == "pending"
    wait_for_status(api, group_id, logs=consumers.logs)

    item = item_of(group_id, "chatgpt", first)
    assert (item.status, item.attempts, item.error, item.next_attempt_at) == ("ok", 2, "", None)
    limited, retried = arrivals(fake, first)
    assert retry_after <= retried - limited < retry_after + 2.5  # + the scheduler's 1 s tick and jitter
    for other in others:
        (arrived,) = arrivals(fake, other)
        assert arrived < retried - INLINE_RETRY_MAX_SECONDS  # the worker was free while the item waited
    with capsys.disabled():
        print(f"\n  queued retry: Retry-After {retry_after:g} s, observed wait {retried - limited:.2f} s; "
              f"seen queued with next_attempt_at {ahead:.2f} s ahead")


def test_permanent_errors_fail_items_at_once_and_the_group_still_completes(
    api, user, consumers, fakes: dict[str, FakeProviderServer]
) -> None:
    wrong_key = "sk-ant-revoked-fake-key-9876543210"  # the fake's 401 echoes it back
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "claude"])
    first, *others = _prompts(workspace)
    fakes["chatgpt"].script_prompt(first, ["quota_exhausted"])
    env = live_env(fakes)
    consumers.start("chatgpt", workers=2, **env)
    consumers.start("claude", workers=2, **{**env, "ANTHROPIC_API_KEY": wrong_key})

    group_id = submit(api, workspace)
    status = wait_for_status(api, group_id, logs=consumers.logs)
    progress = status["response"]

    assert progress["providers"] == {"chatgpt": "completed", "claude": "failed"}
    assert progress["results"] == {"chatgpt": 2, "claude": 0}
    assert progress["failed"] == {"chatgpt": 1, "claude": 3}
    out_of_credit = item_of(group_id, "chatgpt", first)
    assert (out_of_credit.status, out_of_credit.attempts) == ("failed", 1)
    assert out_of_credit.error.startswith("chatgpt: HTTP 429 insufficient_quota: You exceeded your current quota")
    for prompt in (first, *others):
        rejected = item_of(group_id, "claude", prompt)
        assert (rejected.status, rejected.attempts, rejected.backend) == ("failed", 1, "live")
        assert rejected.error == "claude: HTTP 401 authentication_error: Incorrect API key provided: [redacted]."
    assert len(fakes["claude"].requests) == 3 and len(fakes["chatgpt"].requests) == 3  # nothing retried
    group = wait_for_group_closed(group_id)
    assert group.status == "completed"
    claude = JobGroupProvider.objects.get(group=group, provider="claude")
    assert claude.status == "failed" and claude.error.startswith("all 3 items failed; last error: claude: HTTP 401")
    assert JobGroupProvider.objects.get(group=group, provider="chatgpt").status == "completed"
    assert_secrets_nowhere([wrong_key, *KEYS.values()], group_id, consumers, status, answers(api, group_id))


def test_a_missing_api_key_fails_the_providers_items_at_once_without_asking(
    api, user, consumers, fakes: dict[str, FakeProviderServer]
) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "gemini"])
    env = live_env(fakes, GEMINI_API_KEY="")
    consumers.start("chatgpt", workers=2, **env)
    consumers.start("gemini", workers=2, **env)

    group_id = submit(api, workspace)
    progress = wait_for_status(api, group_id, logs=consumers.logs)["response"]

    assert progress["providers"] == {"chatgpt": "completed", "gemini": "failed"}
    assert "GEMINI_API_KEY is not set" in progress["error"]
    for item in JobItem.objects.filter(group_id=group_id, provider="gemini"):
        assert (item.status, item.attempts, item.error) == ("failed", 1, "gemini: GEMINI_API_KEY is not set")
        assert (item.finished_at - item.started_at).total_seconds() < 1.0
    assert fakes["gemini"].requests == []
    assert len(fakes["chatgpt"].requests) == 3


def test_a_stalled_call_times_out_and_is_retried_until_the_attempts_run_out(
    api, user, consumers, fakes: dict[str, FakeProviderServer], capsys
) -> None:
    timeout, stall = 1.0, 3.0
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["claude"])
    stalled, broken, fine = _prompts(workspace)
    fake = fakes["claude"]
    fake.script_prompt(stalled, [{"kind": "stall", "seconds": stall}])
    fake.script_prompt(broken, ["server_error"] * 5)
    consumers.start("claude", workers=3, **live_env(fakes, AGENT_PROVIDER_TIMEOUT=str(timeout), AGENT_MAX_ATTEMPTS="3"))

    group_id = submit(api, workspace)
    progress = wait_for_status(api, group_id, logs=consumers.logs)["response"]

    assert progress["providers"] == {"claude": "completed"}
    item = item_of(group_id, "claude", stalled)
    assert (item.status, item.attempts, item.text) == ("ok", 2, answer_text("claude", stalled))
    first, second = arrivals(fake, stalled)
    # The first call was abandoned after the timeout, not after the stall; the backoff
    # without a Retry-After is at most 1 s after a first attempt.
    assert timeout <= second - first < timeout + 1.0 + 0.5
    gave_up = item_of(group_id, "claude", broken)
    assert (gave_up.status, gave_up.attempts) == ("failed", 3)
    assert gave_up.error.startswith("claude: HTTP 500 api_error") and gave_up.error.endswith("(gave up after 3 attempts)")
    assert len(arrivals(fake, broken)) == 3
    assert item_of(group_id, "claude", fine).attempts == 1
    with capsys.disabled():
        print(f"\n  timeout: AGENT_PROVIDER_TIMEOUT={timeout:g} s, stall {stall:g} s, "
              f"retry arrived {second - first:.2f} s after the stalled call")


def _prompts(workspace) -> list[str]:
    return list(Prompt.objects.filter(workspace=workspace).order_by("id").values_list("text", flat=True))


def _observe(read, seen, *, timeout: float, logs):
    """Poll the database until `seen(read())`; returns what was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if seen(value):
            return value
        time.sleep(0.05)
    raise AssertionError(f"never observed the expected state; last: {value.__dict__}\n{logs()}")


def _seconds_from_now(moment: datetime) -> float:
    return (moment - timezone.now()).total_seconds()


def _rounded(waits: dict[str, float]) -> dict[str, float]:
    return {provider: round(wait, 2) for provider, wait in waits.items()}
