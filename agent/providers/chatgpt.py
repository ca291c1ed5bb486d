"""ChatGPT through OpenAI's Chat Completions API (or any OpenAI-compatible server)."""
from __future__ import annotations

from agent.providers.base import as_dict, as_list, text_piece, usage_build
from agent.providers.http import LiveProvider, Reply


class ChatGPTProvider(LiveProvider):
    """`gpt-4o-search-preview` by default: a model that searches the web and cites what it read.

    Every source is cited: Chat Completions returns only the `url_citation` annotations, not
    what the search retrieved without citing."""

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
        message = as_dict(data["choices"][0]["message"])
        citations = [
            as_dict(annotation.get("url_citation"))
            for annotation in as_list(message.get("annotations"))
            if isinstance(annotation, dict) and annotation.get("type") == "url_citation"
        ]
        # Order of first citation = order of position in the text (the list is usually sorted already).
        citations.sort(key=lambda citation: _position(citation.get("start_index")))
        return Reply(
            text=text_piece(message.get("content")),
            cited=[(citation.get("url"), citation.get("title")) for citation in citations],
            found=[],
            usage=chat_completions_usage(data),
        )


def _position(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("inf")


def chat_completions_usage(data: dict) -> dict:
    """OpenAI's `usage`: the convention itself (completion already includes reasoning tokens,
    which are also kept on their own)."""
    usage = as_dict(data.get("usage"))
    return usage_build(
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        reasoning_tokens=as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"),
    )
