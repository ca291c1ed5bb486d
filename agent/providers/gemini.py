"""Gemini through the Generative Language API, grounded with the Google Search tool."""
from __future__ import annotations

from agent.providers.base import PermanentProviderError, as_dict, as_list, bounded_text, text_piece, token_count, usage_build
from agent.providers.http import LiveProvider, Reply


class GeminiProvider(LiveProvider):
    """generateContent with `google_search`: sources are the grounding chunks, cited when a
    grounding support points to them."""

    provider_id = "gemini"
    key_variable = "GEMINI_API_KEY"
    base_url_variable = "GEMINI_BASE_URL"
    base_url_default = "https://generativelanguage.googleapis.com/v1beta"
    model_variable = "GEMINI_MODEL"
    model_default = "gemini-2.5-flash"
    response_model_field = "modelVersion"

    def endpoint(self) -> str:
        return f"{self.base_url}/models/{self.model}:generateContent"

    def headers(self) -> dict[str, str]:
        # A header, never `?key=` in the URL, so the key cannot leak into a logged URL.
        return {"x-goog-api-key": self.api_key}

    def body(self, prompt: str) -> dict:
        return {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "tools": [{"google_search": {}}]}

    def parse(self, data: dict) -> Reply:
        candidates = as_list(data.get("candidates"))
        if not candidates:
            reason = bounded_text(as_dict(data.get("promptFeedback")).get("blockReason"), 100) or "no candidates"
            raise PermanentProviderError(self.provider_id, f"the prompt was blocked ({reason})")
        candidate = as_dict(candidates[0])
        # Parts are pieces of one text stream, split wherever Gemini chose: joined as they came.
        # Thought summaries (only sent when asked for) are not part of the answer.
        parts = as_list(as_dict(candidate.get("content")).get("parts"))
        text = "".join(text_piece(part.get("text")) for part in parts if isinstance(part, dict) and not part.get("thought"))
        reason = candidate.get("finishReason")
        if not text.strip() and reason in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST"):
            raise PermanentProviderError(self.provider_id, f"the answer was blocked by Gemini's safety filters ({reason})")
        grounding = as_dict(candidate.get("groundingMetadata"))
        webs = [as_dict(as_dict(chunk).get("web")) for chunk in as_list(grounding.get("groundingChunks"))]
        supports = [as_dict(support) for support in as_list(grounding.get("groundingSupports"))]
        # Supports in text order, so the cited chunks come in order of first citation.
        supports.sort(key=lambda support: token_count(as_dict(support.get("segment")).get("startIndex")))
        cited_indices = [
            index
            for support in supports
            for index in as_list(support.get("groundingChunkIndices"))
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(webs)
        ]
        return Reply(
            text=text,
            cited=[_source(webs[index]) for index in cited_indices],
            found=[_source(web) for web in webs],
            usage=gemini_usage(as_dict(data.get("usageMetadata"))),
        )


def gemini_usage(usage: dict) -> dict:
    """OpenAI's convention from usageMetadata: `promptTokenCount` leaves out the search results
    fed to the model (`toolUsePromptTokenCount`) and `candidatesTokenCount` leaves out thinking
    (`thoughtsTokenCount`), while `totalTokenCount` counts both; folding them in makes
    prompt + completion = total again (17 + 119 and 201 + 213 of a total of 550)."""
    tool_use, thoughts = usage.get("toolUsePromptTokenCount"), usage.get("thoughtsTokenCount")
    return usage_build(
        prompt_tokens=token_count(usage.get("promptTokenCount")) + token_count(tool_use),
        completion_tokens=token_count(usage.get("candidatesTokenCount")) + token_count(thoughts),
        tool_use_prompt_tokens=tool_use,
        reasoning_tokens=thoughts,
    )


def _source(web: dict) -> tuple:
    return web.get("uri"), web.get("title"), _grounding_domain(web)


def _grounding_domain(web: dict) -> str | None:
    """The cited site: grounding URIs are vertexaisearch.cloud.google.com redirects whose
    `title` (or `domain`) names the real site, e.g. "g2.com"."""
    uri = bounded_text(web.get("uri"), 2048)
    if "vertexaisearch.cloud.google.com" not in uri:
        return None
    named = bounded_text(web.get("domain") or web.get("title"), 255).strip().lower()
    return named.removeprefix("www.") if named and " " not in named and "." in named else None
