"""Gemini through the Generative Language API, grounded with the Google Search tool."""
from __future__ import annotations

from agent.providers.base import PermanentProviderError
from agent.providers.http import LiveProvider, Reply


class GeminiProvider(LiveProvider):
    """generateContent with `google_search`; sources are the grounding chunks it searched."""

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
        candidates = data.get("candidates") or []
        if not candidates:
            reason = (data.get("promptFeedback") or {}).get("blockReason") or "no candidates"
            raise PermanentProviderError(self.provider_id, f"the prompt was blocked ({reason})")
        candidate = candidates[0]
        # Thought summaries (only sent when asked for) are not part of the answer.
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(part.get("text", "") for part in parts if not part.get("thought"))
        if not text.strip() and candidate.get("finishReason") in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST"):
            raise PermanentProviderError(
                self.provider_id, f"the answer was blocked by Gemini's safety filters ({candidate['finishReason']})"
            )
        chunks = (candidate.get("groundingMetadata") or {}).get("groundingChunks") or []
        webs = [chunk["web"] for chunk in chunks if chunk.get("web")]
        usage = data.get("usageMetadata") or {}
        names = {
            "promptTokenCount": "prompt_tokens",
            "candidatesTokenCount": "completion_tokens",
            "totalTokenCount": "total_tokens",
        }
        return Reply(
            text=text,
            sources=[(web.get("uri"), web.get("title"), _grounding_domain(web)) for web in webs],
            usage={ours: usage[theirs] for theirs, ours in names.items() if theirs in usage},
        )


def _grounding_domain(web: dict) -> str | None:
    """The cited site: grounding URIs are vertexaisearch.cloud.google.com redirects whose
    `title` (or `domain`) names the real site, e.g. "g2.com"."""
    uri = web.get("uri") or ""
    if "vertexaisearch.cloud.google.com" not in uri:
        return None
    named = (web.get("domain") or web.get("title") or "").strip().lower()
    return named.removeprefix("www.") if named and " " not in named and "." in named else None
