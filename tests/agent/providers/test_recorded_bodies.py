"""The live adapters against real provider responses (recorded/README.md says where each came
from), served by the local fakes: what each adapter stores as text, sources, usage and model."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agent.models import JobItem
from agent.providers.base import MODEL_MAX_LENGTH, Answer, PermanentProviderError, TransientProviderError
from agent.providers.live import live_provider
from agent.providers.redact import credentials_redact

from .fake_servers import ODD_MODEL, FakeProviderServer, recorded_body
from .test_live_adapters import SECRET, SPECS

PROVIDERS = ["chatgpt", "perplexity", "gemini", "claude"]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeProviderServer]]:
    started = {provider: FakeProviderServer(provider).start() for provider in PROVIDERS}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def fakes(servers: dict[str, FakeProviderServer], settings) -> dict[str, FakeProviderServer]:
    for provider, fake in servers.items():
        fake.reset()
        spec = SPECS[provider]
        setattr(settings, spec.key_variable, SECRET)
        setattr(settings, spec.base_url_variable, fake.url)
        setattr(settings, spec.model_variable, "")
    settings.AGENT_PROVIDER_TIMEOUT = 30.0
    settings.ANTHROPIC_MAX_CONTINUATIONS = 3
    return servers


def ask_recorded(fakes: dict[str, FakeProviderServer], provider: str, *files: str) -> Answer:
    fakes[provider].script([{"kind": "recorded", "file": name} for name in files])
    return live_provider(provider).ask("What is the weather in San Francisco today?")


def cited(answer: Answer) -> list[str]:
    return [source["url"] for source in answer.sources if source["cited"]]


def only_found(answer: Answer) -> list[str]:
    return [source["url"] for source in answer.sources if not source["cited"]]


def assert_usage_adds_up(usage: dict) -> None:
    assert usage["prompt_tokens"] + usage["completion_tokens"] == usage["total_tokens"]


def test_claude_answer_keeps_its_cited_pages_apart_from_the_ten_it_only_searched(fakes) -> None:
    answer = ask_recorded(fakes, "claude", "claude_web_search.json")

    # One passage, split by Claude at each citation and joined back exactly as it came.
    assert answer.text.startswith(
        "Based on the search results, here's the weather information for San Francisco today (September 16, 2025):"
    )
    assert "**Current Conditions:**\n- Temperature: 66°F with clear skies\n- Wind: W at 3 mph" in answer.text
    assert "\n\n\n" not in answer.text
    assert cited(answer) == [
        "https://www.accuweather.com/en/us/san-francisco/94103/weather-forecast/347629",
        "https://www.wunderground.com/weather/us/ca/san-francisco",
        "https://www.wunderground.com/hourly/us/ca/san-francisco",
    ]
    assert len(only_found(answer)) == 7 and "https://abc7news.com/weather/" in only_found(answer)
    assert answer.sources[0]["title"] == "San Francisco, CA Weather Forecast | AccuWeather"
    assert answer.usage == {"prompt_tokens": 8984, "completion_tokens": 520, "total_tokens": 9504, "web_search_requests": 1}
    assert answer.model == "claude-sonnet-4-20250514"


def test_a_paused_claude_turn_is_continued_with_its_content_and_only_the_whole_turn_is_stored(fakes) -> None:
    answer = ask_recorded(fakes, "claude", "claude_pause_turn_1.json", "claude_pause_turn_2.json")

    first, second = fakes["claude"].requests
    assert [m["role"] for m in second["json"]["messages"]] == ["user", "assistant"]
    assert second["json"]["messages"][0] == first["json"]["messages"][0]
    # The paused content goes back as the assistant turn, exactly as received.
    assert second["json"]["messages"][1]["content"] == recorded_body("claude_pause_turn_1.json")["content"]

    # Passages across the searches stay apart; the answer's pieces split at citations are joined.
    assert answer.text.startswith(
        "I'll run these searches for you one at a time. Let me begin:\n\nNow continuing with the remaining searches:\n\n"
    )
    assert "San Francisco is experiencing sunny weather with a high of 68°F. Clear skies with cold" in answer.text
    assert answer.text.endswith("All searches have been successfully completed with up-to-date information from February 2026.")
    assert "Let me begin:Now" not in answer.text
    # Both requests were billed: their usage adds up.
    assert answer.usage == {
        "prompt_tokens": 401468 + 494549, "completion_tokens": 792 + 1245, "total_tokens": 401468 + 494549 + 792 + 1245,
        "web_search_requests": 15,
    }
    assert cited(answer)[0] == "https://www.wunderground.com/hourly/us/ca/san-francisco"
    assert only_found(answer) and set(cited(answer)).isdisjoint(only_found(answer))


@pytest.mark.parametrize("bound", [0, 1, 3])
def test_a_claude_turn_still_paused_after_the_bound_fails_as_transient_and_stores_nothing(fakes, settings, bound: int) -> None:
    settings.ANTHROPIC_MAX_CONTINUATIONS = bound
    fakes["claude"].script([{"kind": "recorded", "file": "claude_pause_turn_1.json"}] * (bound + 2))

    with pytest.raises(TransientProviderError) as caught:
        live_provider("claude").ask("What is the weather in San Francisco today?")

    assert "pause_turn" in str(caught.value) and f"after {bound} continuations" in str(caught.value)
    assert len(fakes["claude"].requests) == bound + 1


def test_gemini_usage_counts_search_and_thinking_tokens_so_it_adds_up(fakes) -> None:
    answer = ask_recorded(fakes, "gemini", "gemini_google_search.json")

    # usageMetadata: prompt 17 + toolUsePrompt 119, candidates 201 + thoughts 213, total 550.
    assert answer.usage == {
        "prompt_tokens": 136, "completion_tokens": 414, "total_tokens": 550,
        "tool_use_prompt_tokens": 119, "reasoning_tokens": 213,
    }
    assert answer.text.startswith("## Weather in San Francisco is Mild and Partly Cloudy\n\n**San Francisco, CA**")
    assert [(s["domain"], s["cited"]) for s in answer.sources] == [
        ("google.com", True), ("weather.gov", True), ("wunderground.com", True)
    ]
    assert answer.model == "gemini-2.5-pro"


def test_chatgpt_sources_are_its_url_citations_once_each_in_order(fakes) -> None:
    answer = ask_recorded(fakes, "chatgpt", "chatgpt_search_preview.json")
    body = recorded_body("chatgpt_search_preview.json")

    assert answer.text == body["choices"][0]["message"]["content"]
    assert len(body["choices"][0]["message"]["annotations"]) == 12
    assert [s["domain"] for s in answer.sources] == [
        "forbes.com", "en.wikipedia.org", "ft.com", "reuters.com", "healthcareai.news", "medlatest.com",
        "reuters.com", "apnews.com", "axios.com",
    ]
    assert all(s["cited"] for s in answer.sources)
    assert answer.usage == {"prompt_tokens": 26, "completion_tokens": 1044, "total_tokens": 1070, "reasoning_tokens": 0}
    assert answer.model == "gpt-4o-search-preview-2025-03-11"


def test_perplexity_cites_what_its_markers_point_to_and_the_rest_is_only_found(fakes) -> None:
    answer = ask_recorded(fakes, "perplexity", "perplexity_sonar.json")

    # "[1][2][3][4]" then "[1][3]": the fifth citation is never pointed to.
    assert cited(answer) == [
        "https://imagine.gsfc.nasa.gov/science/objects/milkyway1.html",
        "https://www.esa.int/Science_Exploration/Space_Science/Herschel/How_many_stars_are_there_in_the_Universe",
        "https://www.space.com/25959-how-many-stars-are-in-the-milky-way.html",
        "https://www.youtube.com/watch?v=Py2nZYmvTKg",
    ]
    assert only_found(answer) == ["https://bigthink.com/starts-with-a-bang/overestimated-stars-in-universe/"]
    assert answer.text.count("\n\n") == 2 and "400 billion stars[1][2][3][4]." in answer.text
    assert answer.usage == {"prompt_tokens": 14, "completion_tokens": 181, "total_tokens": 195, "search_context_size": "low"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_recorded_answer_has_usage_that_adds_up(fakes, provider: str) -> None:
    files = {"chatgpt": ["chatgpt_search_preview.json"], "perplexity": ["perplexity_sonar.json"],
             "gemini": ["gemini_google_search.json"], "claude": ["claude_pause_turn_1.json", "claude_pause_turn_2.json"]}
    answer = ask_recorded(fakes, provider, *files[provider])
    assert_usage_adds_up(answer.usage)
    assert answer.usage["total_tokens"] > 0


def test_perplexity_folds_citation_and_reasoning_tokens_into_prompt_and_completion() -> None:
    from agent.providers.perplexity import perplexity_usage

    # The shape of a sonar-deep-research usage: citation and reasoning tokens reported beside the others.
    usage = perplexity_usage({"prompt_tokens": 19, "completion_tokens": 9634, "total_tokens": 9653,
                              "citation_tokens": 11789, "num_search_queries": 30, "reasoning_tokens": 351984})
    assert usage["prompt_tokens"] == 19 + 11789 and usage["completion_tokens"] == 9634 + 351984
    assert_usage_adds_up(usage)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_odd_fields_are_stored_as_bounded_strings_and_never_cost_the_answer(fakes, provider: str) -> None:
    fakes[provider].script(["odd"])
    answer = live_provider(provider).ask("Which CRM suits a 10-person team?")

    assert answer.text
    assert len(answer.model) == MODEL_MAX_LENGTH and answer.model.startswith(ODD_MODEL[:50])
    assert answer.sources and all(isinstance(s["title"], str) for s in answer.sources)
    titles = {s["title"] for s in answer.sources}
    assert titles & {'{"text":"Best CRM tools","lang":"en"}', "2025"}
    assert len(fakes[provider].requests) == 1


def test_the_bound_on_model_is_the_answer_columns_length() -> None:
    assert JobItem._meta.get_field("model").max_length == MODEL_MAX_LENGTH


# A key as a careless upstream might echo it: a near copy (one character changed), cut short,
# or inside the request headers it sent back.
NEAR_COPY = SECRET[:-1] + ("X" if SECRET[-1] != "X" else "Y")
OTHER_CREDENTIALS = [
    "sk-ant-api03-Zq8wN2vLr5Tt0pXk7YcBd",
    "sk-proj-4fGh7JkLmN0pQrStUvWxYz12",
    "pplx-9a8b7c6d5e4f3a2b1c0d9e8f",
    "AIzaSyD3x4mpl3K3yF0rT3st1ng0nly",
]
LEAKY_MESSAGES = [
    f"Incorrect API key provided: {NEAR_COPY}.",
    f"Incorrect API key provided: {SECRET[:30]}****.",
    f"request headers: {{'Authorization': 'Bearer {OTHER_CREDENTIALS[1]}', 'x-goog-api-key': '{OTHER_CREDENTIALS[3]}'}}",
    f"GET https://example.googleapis.com/v1/models?key={OTHER_CREDENTIALS[3]}&alt=json failed",
    f"x-api-key: {OTHER_CREDENTIALS[0]} is not valid",
    f"unknown key {OTHER_CREDENTIALS[2]}",
]


def secret_runs(text: str, secret: str = SECRET, run: int = 10) -> list[str]:
    return [secret[i:i + run] for i in range(len(secret) - run + 1) if secret[i:i + run] in text]


@pytest.mark.parametrize("message", LEAKY_MESSAGES)
def test_credential_shapes_and_near_copies_of_the_key_are_redacted(message: str) -> None:
    redacted = credentials_redact(message, SECRET)
    assert "[redacted]" in redacted
    assert not secret_runs(redacted)
    assert not any(credential in redacted or credential[:12] in redacted for credential in OTHER_CREDENTIALS)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_error_text_never_carries_anything_like_a_credential(fakes, provider: str) -> None:
    fakes[provider].script([{"kind": "error", "status": 400, "message": message} for message in LEAKY_MESSAGES])
    messages = []
    for _ in LEAKY_MESSAGES:
        with pytest.raises(PermanentProviderError) as caught:
            live_provider(provider).ask("hello")
        messages.append(str(caught.value))
    stored = json.dumps(messages)
    assert not secret_runs(stored)
    assert not any(credential[:12] in stored for credential in OTHER_CREDENTIALS)
    assert all(message.startswith(f"{provider}: HTTP 400") for message in messages)


def test_redaction_leaves_ordinary_error_text_alone() -> None:
    text = "HTTP 429 rate_limit_error: Number of request tokens has exceeded your per-minute rate limit."
    assert credentials_redact(text, SECRET) == text
