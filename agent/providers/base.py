"""The one interface every provider backend implements, the errors it may raise, and the
normalising of what a provider sent (bounded strings, sources with `cited`, usage that adds up)."""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

# Every provider field is stored as a string of bounded length, whatever type or size it came as:
# a 5,000-character `model` once failed the item's write (varchar(200)) and cost four paid asks.
MODEL_MAX_LENGTH = 200  # JobItem.model's max_length; tests pin the two together
URL_MAX_LENGTH = 2048
TITLE_MAX_LENGTH = 500
DOMAIN_MAX_LENGTH = 255


@dataclass(frozen=True)
class Answer:
    """What one provider said for one prompt, normalised for storage."""

    text: str
    sources: list[dict] = field(default_factory=list)  # [{"url", "title", "domain", "cited"}], cited first
    usage: dict = field(default_factory=dict)  # prompt_tokens + completion_tokens == total_tokens
    latency_ms: int = 0
    model: str = ""


class ProviderError(Exception):
    """A provider call that produced no answer; the message names the provider and the cause."""

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        self.message = message
        super().__init__(f"{provider}: {message}")


class PermanentProviderError(ProviderError):
    """Asking again will not help (bad request, bad key, quota gone, malformed body)."""


class TransientProviderError(ProviderError):
    """Asking again later may help; `retry_after` is the provider's own hint in seconds."""

    def __init__(self, provider: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(provider, message)
        self.retry_after = retry_after


class Provider(Protocol):
    provider_id: str
    backend: str  # "simulated" | "live"

    def ask(self, prompt: str) -> Answer:
        """One attempt; raises ProviderError subclasses. Retries belong to the caller."""


def bounded_text(value: Any, limit: int) -> str:
    """Any JSON value as a one-line string of at most `limit` characters ("" for null).

    Objects and arrays become compact JSON rather than Python reprs, so what is stored is
    still readable and never breaks a page script that expects a string."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def token_count(value: Any) -> int:
    """A provider's token figure as a non-negative int; anything that is not a number counts 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return max(0, int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def usage_build(*, prompt_tokens: Any, completion_tokens: Any, **details: Any) -> dict:
    """Usage in OpenAI's convention, whatever the provider counted separately.

    The caller folds tool-use prompt tokens into `prompt_tokens` and reasoning tokens into
    `completion_tokens`; the total is always their sum, so the three figures add up. `details`
    (reasoning_tokens, web_search_requests, ...) are kept beside them when the provider sent them."""
    prompt, completion = token_count(prompt_tokens), token_count(completion_tokens)
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    for name, value in details.items():
        if value is None:
            continue
        usage[name] = bounded_text(value, 50) if isinstance(value, str) else token_count(value)
    return usage


def source_domain(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # e.g. an unbalanced "[" in the host part
        host = ""
    return host[4:] if host.startswith("www.") else host


def sources_build(cited: Iterable[tuple] = (), found: Iterable[tuple] = ()) -> list[dict]:
    """(url, title[, domain]) tuples -> [{"url", "title", "domain", "cited"}].

    `cited` is in order of first citation, `found` in the provider's order; a URL appears once,
    cited if the answer cites it anywhere, and cited sources come first. The domain is the URL's
    host unless the adapter knows better (Gemini's grounding links go through a Google redirect
    and name the real site in the title)."""
    sources: dict[str, dict] = {}
    for is_cited, entries in ((True, cited), (False, found)):
        for url, title, *domain in entries:
            url = bounded_text(url, URL_MAX_LENGTH)
            if not url or url in sources:
                continue
            named = bounded_text(domain[0], DOMAIN_MAX_LENGTH) if domain else ""
            sources[url] = {
                "url": url,
                "title": bounded_text(title, TITLE_MAX_LENGTH),
                "domain": named or bounded_text(source_domain(url), DOMAIN_MAX_LENGTH),
                "cited": is_cited,
            }
    return list(sources.values())


def sources_normalise(raw: Iterable[tuple]) -> list[dict]:
    """Sources the answer cites, in order: kept for callers that have no "only found" list."""
    return sources_build(cited=raw)


def text_piece(value: Any) -> str:
    """A piece of answer text as sent; a non-string piece (never seen, but possible) as its JSON."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []
