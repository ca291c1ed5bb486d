"""Claude through Anthropic's Messages API with the server-side web search tool."""
from __future__ import annotations

import os

from agent.providers.http import LiveProvider, Reply

ANTHROPIC_VERSION = "2023-06-01"


class ClaudeProvider(LiveProvider):
    """Sources are the results Claude cited first, then the rest of what its searches returned."""

    provider_id = "claude"
    key_variable = "ANTHROPIC_API_KEY"
    base_url_variable = "ANTHROPIC_BASE_URL"
    base_url_default = "https://api.anthropic.com/v1"
    model_variable = "ANTHROPIC_MODEL"
    model_default = "claude-sonnet-4-5"

    def __init__(self) -> None:
        super().__init__()
        self.max_tokens = int(os.environ.get("ANTHROPIC_MAX_TOKENS") or 2048)

    def endpoint(self) -> str:
        return f"{self.base_url}/messages"

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key, "anthropic-version": ANTHROPIC_VERSION}

    def body(self, prompt: str) -> dict:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        }

    def parse(self, data: dict) -> Reply:
        blocks = data["content"]
        texts = [block for block in blocks if block.get("type") == "text"]
        cited = [
            (citation.get("url"), citation.get("title"))
            for block in texts
            for citation in block.get("citations") or []
            if citation.get("type") == "web_search_result_location"
        ]
        # A failed search puts an error object, not a list, in the tool result's content.
        searched = [
            (result.get("url"), result.get("title"))
            for block in blocks
            if block.get("type") == "web_search_tool_result" and isinstance(block.get("content"), list)
            for result in block["content"]
            if result.get("type") == "web_search_result"
        ]
        usage = data.get("usage") or {}
        prompt_tokens, completion_tokens = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        normalised = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        searches = (usage.get("server_tool_use") or {}).get("web_search_requests")
        if searches is not None:
            normalised["web_search_requests"] = searches
        return Reply(text="".join(block.get("text", "") for block in texts), sources=cited + searched, usage=normalised)
