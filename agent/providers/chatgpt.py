"""ChatGPT through OpenAI's Chat Completions API (or any OpenAI-compatible server)."""
from __future__ import annotations

from agent.providers.http import LiveProvider, Reply


class ChatGPTProvider(LiveProvider):
    """`gpt-4o-search-preview` by default: a model that searches the web and cites what it read."""

    provider_id = "chatgpt"
    key_variable = "OPENAI_API_KEY"
    base_url_variable = "OPENAI_BASE_URL"
    base_url_default = "https://api.openai.com/v1"
    model_variable = "OPENAI_MODEL"
    model_default = "gpt-4o-search-preview"

    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def body(self, prompt: str) -> dict:
        body: dict = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        # Only the search-preview models accept web_search_options; other models reject the request.
        if "search" in self.model:
            body["web_search_options"] = {}
        return body

    def parse(self, data: dict) -> Reply:
        message = data["choices"][0]["message"]
        citations = [
            annotation["url_citation"]
            for annotation in message.get("annotations") or []
            if annotation.get("type") == "url_citation"
        ]
        return Reply(
            text=message.get("content") or "",
            sources=[(citation.get("url"), citation.get("title")) for citation in citations],
            usage=chat_completions_usage(data),
        )


def chat_completions_usage(data: dict) -> dict:
    """Token counts of an OpenAI-shaped `usage`, in the keys every backend stores."""
    usage = data.get("usage") or {}
    return {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens") if key in usage}
