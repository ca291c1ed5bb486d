"""The live adapters against local fakes of each provider's HTTP API: answers, errors, timeouts."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent.providers.base import PermanentProviderError, ProviderError, TransientProviderError
from agent.providers.http import LiveProvider
from agent.providers.live import LIVE_ADAPTERS, live_provider
from agent.providers.retry import RETRY_AFTER_MAX_SECONDS, retry_delay

from .fake_servers import FakeProviderServer, answer_text, expected_sources

PROVIDERS = ["chatgpt", "perplexity", "gemini", "claude"]
SECRET = "sk-test-very-secret-key-0123456789"


@dataclass(frozen=True)
class Spec:
    key_variable: str
    base_url_variable: str
    model_variable: str
    auth_header: str
    auth_value: str


SPECS = {
    "chatgpt": Spec("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "authorization", f"Bearer {SECRET}"),
    "perplexity": Spec(
        "PERPLEXITY_API_KEY", "PERPLEXITY_BASE_URL", "PERPLEXITY_MODEL", "authorization", f"Bearer {SECRET}"
    ),
    "gemini": Spec("GEMINI_API_KEY", "GEMINI_BASE_URL", "GEMINI_MODEL", "x-goog-api-key", SECRET),
    "claude": Spec("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", "x-api-key", SECRET),
}


chatgpt_only = pytest.mark.parametrize("provider", ["chatgpt"])
perplexity_only = pytest.mark.parametrize("provider", ["perplexity"])
gemini_only = pytest.mark.parametrize("provider", ["gemini"])
claude_only = pytest.mark.parametrize("provider", ["claude"])


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeProviderServer]]:
    started = {provider: FakeProviderServer(provider).start() for provider in PROVIDERS}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(servers: dict[str, FakeProviderServer], provider: str, settings) -> FakeProviderServer:
    # Adapters read their knobs through Django settings (which read the env vars once).
    fake = servers[provider]
    fake.reset()
    spec = SPECS[provider]
    setattr(settings, spec.key_variable, SECRET)
    setattr(settings, spec.base_url_variable, fake.url)
    setattr(settings, spec.model_variable, "")
    settings.AGENT_PROVIDER_TIMEOUT = 120.0
    return fake


def ask_error(provider: str, prompt: str = "best crm?") -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        live_provider(provider).ask(prompt)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    return caught.value


def test_registry_maps_every_provider_to_a_live_adapter() -> None:
    assert sorted(LIVE_ADAPTERS) == sorted(PROVIDERS)
    for provider_id, adapter in LIVE_ADAPTERS.items():
        built = live_provider(provider_id)
        assert isinstance(built, adapter) and built.provider_id == provider_id and built.backend == "live"


def test_answer_has_text_sources_usage_and_the_responding_model(provider: str, server: FakeProviderServer) -> None:
    answer = live_provider(provider).ask("Which CRM suits a 10-person team?")

    assert answer.text == answer_text(provider, "Which CRM suits a 10-person team?")
    assert answer.sources == expected_sources(provider)
    assert answer.usage["total_tokens"] == answer.usage["prompt_tokens"] + answer.usage["completion_tokens"] > 0
    assert answer.latency_ms >= 0
    default_model = {"chatgpt": "gpt-4o-search-preview-2025-03-11", "perplexity": "sonar",
                     "gemini": "gemini-2.5-flash", "claude": "claude-sonnet-4-5-20250929"}
    assert answer.model == default_model[provider]


def test_different_prompts_get_different_answers(provider: str, server: FakeProviderServer) -> None:
    adapter = live_provider(provider)
    assert adapter.ask("first question").text != adapter.ask("second question").text


def test_request_carries_the_key_the_model_and_the_search_tool(
    provider: str, server: FakeProviderServer, settings
) -> None:
    setattr(settings, SPECS[provider].model_variable, "configured-search-model")
    live_provider(provider).ask("hello")

    (request,) = server.requests
    spec = SPECS[provider]
    assert request["headers"][spec.auth_header] == spec.auth_value
    body = request["json"]
    if provider == "gemini":
        assert request["path"] == "/v1beta/models/configured-search-model:generateContent"
        assert body["tools"] == [{"google_search": {}}]
        assert body["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]
        assert "key=" not in request["path"]
    else:
        assert body["model"] == "configured-search-model"
        assert body["messages"] == [{"role": "user", "content": "hello"}]
    if provider == "chatgpt":
        assert request["path"] == "/v1/chat/completions" and body["web_search_options"] == {}
    if provider == "claude":
        assert request["path"] == "/v1/messages"
        assert request["headers"]["anthropic-version"] == "2023-06-01"
        assert body["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
        assert body["max_tokens"] == 2048


@chatgpt_only
def test_chatgpt_sends_web_search_options_only_to_search_models(
    provider: str, server: FakeProviderServer, settings
) -> None:
    settings.OPENAI_MODEL = "gpt-4o-mini"
    live_provider("chatgpt").ask("hello")
    assert "web_search_options" not in server.requests[0]["json"]


@perplexity_only
def test_perplexity_falls_back_to_bare_citations(provider: str, server: FakeProviderServer) -> None:
    server.script([{"kind": "ok", "without_search_results": True}])
    sources = live_provider(provider).ask("hello").sources
    assert [source["url"] for source in sources] == [source["url"] for source in expected_sources(provider)]
    assert all(source["title"] == "" and source["cited"] for source in sources)


@claude_only
def test_claude_reports_its_web_searches_in_usage(provider: str, server: FakeProviderServer) -> None:
    assert live_provider(provider).ask("hello").usage["web_search_requests"] == 1


def test_rate_limit_is_transient_with_the_providers_retry_after(provider: str, server: FakeProviderServer) -> None:
    server.script([{"kind": "rate_limited", "retry_after": 7}])
    error = ask_error(provider)
    assert isinstance(error, TransientProviderError)
    assert error.retry_after == 7.0
    assert "HTTP 429" in str(error) and str(error).startswith(f"{provider}: ")


@chatgpt_only
def test_retry_after_as_an_http_date_is_honoured(provider: str, server: FakeProviderServer) -> None:
    server.script([{"kind": "rate_limited", "retry_after": 30, "retry_after_http_date": True}])
    error = ask_error(provider)
    assert isinstance(error, TransientProviderError) and 25 <= error.retry_after <= 30


@pytest.mark.parametrize("behaviour", ["server_error", "overloaded"])
def test_server_errors_and_overload_are_transient(provider: str, server: FakeProviderServer, behaviour: str) -> None:
    server.script([behaviour])
    error = ask_error(provider)
    assert isinstance(error, TransientProviderError)
    assert str(error).startswith(f"{provider}: HTTP 5")


@claude_only
def test_claude_529_overloaded_is_transient_and_says_so(provider: str, server: FakeProviderServer) -> None:
    server.script(["overloaded"])
    error = ask_error(provider)
    assert isinstance(error, TransientProviderError) and "HTTP 529 overloaded_error" in str(error)


@pytest.mark.parametrize(
    "behaviour, cause",
    [
        ("unauthorized", "HTTP 401"),
        ({"kind": "error", "status": 404, "message": "model not found"}, "model not found"),
        ({"kind": "error", "status": 403, "message": "not allowed"}, "HTTP 403"),
    ],
)
def test_client_errors_are_permanent_and_name_provider_and_cause(
    provider: str, server: FakeProviderServer, behaviour: object, cause: str
) -> None:
    server.script([behaviour])
    error = ask_error(provider)
    assert isinstance(error, PermanentProviderError)
    assert str(error).startswith(f"{provider}: ") and cause in str(error)


def test_an_exhausted_quota_is_permanent(provider: str, server: FakeProviderServer) -> None:
    server.script(["quota_exhausted"])
    error = ask_error(provider)
    assert isinstance(error, PermanentProviderError)
    expected = {"chatgpt": "insufficient_quota", "perplexity": "insufficient_quota",
                "gemini": "daily quota exhausted", "claude": "credit balance is too low"}
    assert expected[provider] in str(error)


@gemini_only
def test_gemini_per_minute_exhaustion_is_transient_with_its_retry_delay(
    provider: str, server: FakeProviderServer
) -> None:
    server.script([{"kind": "rate_limited", "retry_after": 13}])
    error = ask_error(provider)
    assert isinstance(error, TransientProviderError) and error.retry_after == 13.0
    assert "RESOURCE_EXHAUSTED" in str(error)


@gemini_only
def test_gemini_safety_block_is_permanent_and_says_so(provider: str, server: FakeProviderServer) -> None:
    server.script(["empty"])
    error = ask_error(provider)
    assert isinstance(error, PermanentProviderError) and "safety" in str(error)


def test_malformed_json_is_permanent(provider: str, server: FakeProviderServer) -> None:
    server.script(["malformed"])
    error = ask_error(provider)
    assert isinstance(error, PermanentProviderError) and "not a JSON object" in str(error)


def test_an_answer_without_text_is_permanent(provider: str, server: FakeProviderServer) -> None:
    server.script(["empty"])
    assert isinstance(ask_error(provider), PermanentProviderError)


def test_a_stall_past_the_read_timeout_is_transient_and_takes_about_the_timeout(
    provider: str, server: FakeProviderServer, settings
) -> None:
    settings.AGENT_PROVIDER_TIMEOUT = 0.5
    server.script([{"kind": "stall", "seconds": 5}])
    started = time.monotonic()
    error = ask_error(provider)
    elapsed = time.monotonic() - started
    assert isinstance(error, TransientProviderError) and "timed out" in str(error)
    assert 0.45 <= elapsed < 1.5


def test_an_unreachable_provider_is_transient(provider: str, server: FakeProviderServer, settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    setattr(settings, SPECS[provider].base_url_variable, f"http://127.0.0.1:{closed_port}")
    error = ask_error(provider)
    assert isinstance(error, TransientProviderError) and "connection failed" in str(error)


def test_a_missing_key_fails_at_once_naming_the_variable(provider: str, server: FakeProviderServer, settings) -> None:
    setattr(settings, SPECS[provider].key_variable, "")
    started = time.monotonic()
    error = ask_error(provider)
    assert isinstance(error, PermanentProviderError)
    assert str(error) == f"{provider}: {SPECS[provider].key_variable} is not set"
    assert time.monotonic() - started < 0.1
    assert server.requests == []


def test_the_key_never_appears_in_any_error_message(provider: str, server: FakeProviderServer, settings) -> None:
    # The fake's 401 echoes the key it was sent; the adapter must not pass it on.
    settings.AGENT_PROVIDER_TIMEOUT = 0.3
    behaviours = [
        "unauthorized", "rate_limited", "quota_exhausted", "server_error", "overloaded", "malformed", "empty",
        {"kind": "stall", "seconds": 2}, {"kind": "error", "status": 400, "message": f"bad key {SECRET}"},
    ]
    server.script(behaviours)
    messages = [str(ask_error(provider)) for _ in behaviours]
    assert any("[redacted]" in message for message in messages)
    assert all(SECRET not in message for message in messages)


def test_adapters_read_their_configuration_from_settings_when_constructed(settings) -> None:
    settings.ANTHROPIC_MODEL = "claude-test"
    settings.ANTHROPIC_MAX_TOKENS = 512
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:1/v1/"
    adapter = live_provider("claude")
    assert isinstance(adapter, LiveProvider)
    assert adapter.model == "claude-test" and adapter.max_tokens == 512
    assert adapter.endpoint() == "http://127.0.0.1:1/v1/messages"


def test_retry_delay_backs_off_with_jitter_and_honours_the_providers_hint() -> None:
    for attempt in range(1, 12):
        assert 0 <= retry_delay(attempt=attempt, retry_after=None) <= min(60.0, 2 ** (attempt - 1))
    assert 7.0 <= retry_delay(attempt=1, retry_after=7.0) <= 7.0
    assert retry_delay(attempt=1, retry_after=86_400) == RETRY_AFTER_MAX_SECONDS
    assert retry_delay(attempt=10_000, retry_after=None) <= 60.0


def test_gemini_grounding_redirects_are_credited_to_the_site_they_name() -> None:
    from agent.providers.base import sources_build
    from agent.providers.gemini import GeminiProvider

    redirect = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AbC123"
    data = {
        "candidates": [{
            "content": {"parts": [{"text": "HubSpot and Pipedrive are popular."}]},
            "groundingMetadata": {
                "groundingChunks": [
                    {"web": {"uri": redirect, "title": "g2.com"}},
                    {"web": {"uri": "https://www.capterra.com/crm-software/", "title": "Capterra CRM"}},
                ],
                "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": 7}, "groundingChunkIndices": [0]}],
            },
        }],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12},
    }
    reply = GeminiProvider().parse(data)
    assert sources_build(reply.cited, reply.found) == [
        {"url": redirect, "title": "g2.com", "domain": "g2.com", "cited": True},
        {"url": "https://www.capterra.com/crm-software/", "title": "Capterra CRM", "domain": "capterra.com",
         "cited": False},
    ]
