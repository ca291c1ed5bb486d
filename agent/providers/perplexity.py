"""Perplexity's Sonar models through its OpenAI-shaped Chat Completions API."""
from __future__ import annotations

import re

from agent.providers.base import as_dict, as_list, bounded_text, text_piece, token_count, usage_build
from agent.providers.http import LiveProvider, Reply

# Sonar cites as "[1]" or "[1][3]" in the text: 1-based indices into `citations`.
CITATION_MARKER = re.compile(r"\[(\d{1,3})\]")


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
        text = text_piece(as_dict(data["choices"][0]["message"]).get("content"))
        results = [result for result in as_list(data.get("search_results")) if isinstance(result, dict)]
        titles: dict[str, object] = {}
        for result in results:  # the first title given for a URL wins, as everywhere else
            titles.setdefault(bounded_text(result.get("url"), 2048), result.get("title"))
        citations = [url for url in as_list(data.get("citations")) if isinstance(url, str) and url]
        if not citations:  # newer responses may carry only search_results, in the same order
            citations = [bounded_text(result.get("url"), 2048) for result in results]
        marked = [int(number) for number in CITATION_MARKER.findall(text)]
        if marked:
            cited_urls = [citations[number - 1] for number in marked if 1 <= number <= len(citations)]
        else:
            # No marker at all (a structured or very short answer): `citations` is Perplexity's own
            # list of what the answer used, so it counts as cited.
            cited_urls = list(citations)
        found_urls = [bounded_text(result.get("url"), 2048) for result in results] + citations
        return Reply(
            text=text,
            cited=[(url, titles.get(url)) for url in cited_urls],
            found=[(url, titles.get(url)) for url in found_urls],
            usage=perplexity_usage(as_dict(data.get("usage"))),
        )


def perplexity_usage(usage: dict) -> dict:
    """Sonar reports citation (search-result) tokens and reasoning tokens beside prompt and
    completion, not inside them (its deep-research pricing bills each on its own), so they are
    folded in here: prompt includes citation tokens, completion includes reasoning tokens."""
    citation, reasoning = token_count(usage.get("citation_tokens")), token_count(usage.get("reasoning_tokens"))
    return usage_build(
        prompt_tokens=token_count(usage.get("prompt_tokens")) + citation,
        completion_tokens=token_count(usage.get("completion_tokens")) + reasoning,
        citation_tokens=usage.get("citation_tokens"),
        reasoning_tokens=usage.get("reasoning_tokens"),
        num_search_queries=usage.get("num_search_queries"),
        search_context_size=usage.get("search_context_size"),
    )
