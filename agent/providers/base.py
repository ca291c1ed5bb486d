"""The one interface every provider backend implements, and the errors it may raise."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    """What one provider said for one prompt, normalised for storage."""

    text: str
    sources: list[dict] = field(default_factory=list)  # [{"url", "title", "domain"}]
    usage: dict = field(default_factory=dict)
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


def source_domain(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host[4:] if host.startswith("www.") else host


def sources_normalise(raw: list[tuple]) -> list[dict]:
    """(url, title[, domain]) tuples -> [{"url", "title", "domain"}], first occurrence wins, order kept.

    The domain is the URL's host unless the adapter knows better (Gemini's grounding links
    go through a Google redirect and name the real site in the title).
    """
    seen: set[str] = set()
    sources = []
    for url, title, *domain in raw:
        if not url or url in seen:
            continue
        seen.add(url)
        sources.append({"url": url, "title": title or "", "domain": (domain[0] if domain and domain[0] else source_domain(url))})
    return sources
