"""Perplexity's Sonar models through its OpenAI-shaped Chat Completions API."""
from __future__ import annotations

from agent.providers.chatgpt import chat_completions_usage
from agent.providers.http import LiveProvider, Reply


class PerplexityProvider(LiveProvider):
    """Sonar always searches; its sources come beside the message, not inside it."""

    provider_id = "perplexity"
    key_variable = "PERPLEXITY_API_KEY"
    base_url_variable = "PERPLEXITY_BASE_URL"
    base_url_default = "https://api.perplexity.ai"
    model_variable = "PERPLEXITY_MODEL"
    model_default = "sonar"

    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def body(self, prompt: str) -> dict:
        return {"model": self.model, "messages": [{"role": "user", "content": prompt}]}

    def parse(self, data: dict) -> Reply:
        # search_results carries titles; older responses only have the bare `citations` URLs.
        results = data.get("search_results") or []
        if results:
            sources = [(result.get("url"), result.get("title")) for result in results]
        else:
            sources = [(url, None) for url in data.get("citations") or [] if isinstance(url, str)]
        return Reply(
            text=data["choices"][0]["message"].get("content") or "",
            sources=sources,
            usage=chat_completions_usage(data),
        )
