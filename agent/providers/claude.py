"""Claude through Anthropic's Messages API with the server-side web search tool."""
from __future__ import annotations

from django.conf import settings

from agent.providers.base import TransientProviderError, as_dict, as_list, text_piece, token_count, usage_build
from agent.providers.http import LiveProvider, Reply, passages_join

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_CONTINUATIONS = 3


class ClaudeProvider(LiveProvider):
    """Sources are the results Claude cited (text-block citations), then the rest of what its
    searches returned. A turn that pauses (`stop_reason: "pause_turn"`) is continued by sending
    its content back as the assistant turn, as Anthropic documents, at most
    ANTHROPIC_MAX_CONTINUATIONS times; a turn still paused after that fails the attempt as
    transient, and a paused turn is never stored as the answer."""

    provider_id = "claude"
    key_variable = "ANTHROPIC_API_KEY"
    base_url_variable = "ANTHROPIC_BASE_URL"
    base_url_default = "https://api.anthropic.com/v1"
    model_variable = "ANTHROPIC_MODEL"
    model_default = "claude-sonnet-4-5"

    def __init__(self) -> None:
        super().__init__()
        self.max_tokens = int(getattr(settings, "ANTHROPIC_MAX_TOKENS", 0) or 2048)
        self.max_continuations = max(0, int(getattr(settings, "ANTHROPIC_MAX_CONTINUATIONS", DEFAULT_MAX_CONTINUATIONS)))

    def endpoint(self) -> str:
        return f"{self.base_url}/messages"

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key, "anthropic-version": ANTHROPIC_VERSION}

    def body(self, prompt: str, content_so_far: list | None = None) -> dict:
        messages: list[dict] = [{"role": "user", "content": prompt}]
        if content_so_far:
            messages.append({"role": "assistant", "content": content_so_far})
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": messages,
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        }

    def converse(self, prompt: str) -> tuple[dict, Reply]:
        content: list = []
        usages: list[dict] = []
        for _continuation in range(self.max_continuations + 1):
            data = self.post(self.body(prompt, content))
            content.extend(block for block in as_list(data["content"]) if isinstance(block, dict))
            usages.append(as_dict(data.get("usage")))
            if data.get("stop_reason") != "pause_turn":
                return data, self.parse({**data, "content": content, "usage": _usage_sum(usages)})
        raise TransientProviderError(
            self.provider_id,
            f"the turn was still paused (stop_reason pause_turn) after {self.max_continuations} continuations "
            f"(ANTHROPIC_MAX_CONTINUATIONS); nothing was stored",
        )

    def parse(self, data: dict) -> Reply:
        blocks = [block for block in as_list(data["content"]) if isinstance(block, dict)]
        # Claude splits a passage at every citation: consecutive text blocks are one passage,
        # joined as they came; any other block (a search, its results, thinking) ends a passage.
        passages: list[str] = []
        current: list[str] | None = None
        for block in blocks:
            if block.get("type") == "text":
                if current is None:
                    current = []
                    passages.append("")
                current.append(text_piece(block.get("text")))
                passages[-1] = "".join(current)
            else:
                current = None
        cited = [
            (citation.get("url"), citation.get("title"))
            for block in blocks
            if block.get("type") == "text"
            for citation in as_list(block.get("citations"))
            if isinstance(citation, dict) and citation.get("type") == "web_search_result_location"
        ]
        # A failed search puts an error object, not a list, in the tool result's content.
        found = [
            (result.get("url"), result.get("title"))
            for block in blocks
            if block.get("type") == "web_search_tool_result"
            for result in as_list(block.get("content"))
            if isinstance(result, dict) and result.get("type") == "web_search_result"
        ]
        return Reply(text=passages_join(passages), cited=cited, found=found, usage=claude_usage(as_dict(data.get("usage"))))


def claude_usage(usage: dict) -> dict:
    """OpenAI's convention from Anthropic's usage: `input_tokens` leaves out prompt-cache reads
    and writes, which are prompt tokens all the same; the server tool's search results are
    already inside `input_tokens`, and the searches are kept as `web_search_requests`."""
    prompt_names = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    prompt = sum(token_count(usage.get(name)) for name in prompt_names)
    return usage_build(
        prompt_tokens=prompt,
        completion_tokens=usage.get("output_tokens"),
        web_search_requests=as_dict(usage.get("server_tool_use")).get("web_search_requests"),
    )


def _usage_sum(usages: list[dict]) -> dict:
    """A continued turn's usage: every request of it was billed, so the figures add up."""
    total: dict = {"server_tool_use": {}}
    for usage in usages:
        for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            if name in usage:
                total[name] = total.get(name, 0) + token_count(usage.get(name))
        searches = as_dict(usage.get("server_tool_use")).get("web_search_requests")
        if searches is not None:
            counted = total["server_tool_use"].get("web_search_requests", 0)
            total["server_tool_use"]["web_search_requests"] = counted + token_count(searches)
    if not total["server_tool_use"]:
        del total["server_tool_use"]
    return total
