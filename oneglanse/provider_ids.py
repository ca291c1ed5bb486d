"""The provider ids and their display labels: plain data, no Django, so settings may import it."""
from __future__ import annotations

PROVIDER_IDS: tuple[str, ...] = ("chatgpt", "perplexity", "gemini", "claude")
PROVIDER_LABELS: dict[str, str] = {"chatgpt": "ChatGPT", "perplexity": "Perplexity", "gemini": "Gemini", "claude": "Claude"}


def provider_label(provider_id: str) -> str:
    return PROVIDER_LABELS.get(provider_id, provider_id)


def unknown_provider_ids(provider_ids: list[str]) -> list[str]:
    return [provider_id for provider_id in provider_ids if provider_id not in PROVIDER_IDS]
