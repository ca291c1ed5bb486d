"""The live HTTP adapters by provider id."""
from __future__ import annotations

from agent.providers.chatgpt import ChatGPTProvider
from agent.providers.claude import ClaudeProvider
from agent.providers.gemini import GeminiProvider
from agent.providers.http import LiveProvider
from agent.providers.perplexity import PerplexityProvider

LIVE_ADAPTERS: dict[str, type[LiveProvider]] = {
    "chatgpt": ChatGPTProvider,
    "perplexity": PerplexityProvider,
    "gemini": GeminiProvider,
    "claude": ClaudeProvider,
}


def live_provider(provider_id: str) -> LiveProvider:
    """A fresh adapter, configured from the environment as it is now."""
    return LIVE_ADAPTERS[provider_id]()
