"""An offline backend that answers like a provider would, for demos, tests and benchmarks."""
from __future__ import annotations

import hashlib
import random
import time

from agent.providers.base import Answer, PermanentProviderError, sources_build

_SITES = (
    ("https://www.g2.com/categories/{slug}", "G2 — best {topic} software"),
    ("https://www.capterra.com/{slug}-software/", "Capterra — {topic} software reviews"),
    ("https://en.wikipedia.org/wiki/{slug}", "Wikipedia — {topic}"),
    ("https://www.techradar.com/best/{slug}", "TechRadar — the best {topic} tools"),
    ("https://www.reddit.com/r/{slug}/", "r/{slug} — community recommendations"),
)
_SIMULATED_MODELS = {
    "chatgpt": "simulated-gpt",
    "perplexity": "simulated-sonar",
    "gemini": "simulated-gemini",
    "claude": "simulated-claude",
}


class SimulatedProvider:
    """Answers offline. Its answers are stored with backend "simulated" and shown as such."""

    backend = "simulated"

    def __init__(self, provider_id: str, *, latency_ms: int, failure_rate: float) -> None:
        self.provider_id = provider_id
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate

    def ask(self, prompt: str) -> Answer:
        started = time.monotonic()
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000 * random.uniform(0.8, 1.2))
        if self.failure_rate and random.random() < self.failure_rate:
            raise PermanentProviderError(self.provider_id, "simulated failure (AGENT_SIMULATED_FAILURE_RATE)")
        # Seeded by provider and prompt, so the same question gets the same-looking answer.
        seed = int(hashlib.sha256(f"{self.provider_id}:{prompt}".encode()).hexdigest()[:12], 16)
        rng = random.Random(seed)
        topic = " ".join(prompt.rstrip("?").split()[-3:]).lower() or "software"
        slug = "-".join(topic.split())
        # Like the real providers, some pages are cited by the answer and the rest only retrieved.
        sites = rng.sample(_SITES, k=rng.randint(2, 4))
        picks = [(url.format(slug=slug), title.format(topic=topic, slug=slug)) for url, title in sites]
        cited_count = rng.randint(1, len(picks) - 1)
        sources = sources_build(cited=picks[:cited_count], found=picks[cited_count:])
        text = (
            f"[Simulated {self.provider_id} answer] For \"{prompt.strip()}\", commonly recommended options "
            f"depend on team size and budget. Reviewers on {', '.join(s['domain'] for s in sources if s['cited'])} "
            f"compare pricing, integrations and support; shortlist two or three and run a trial."
        )
        prompt_tokens = max(1, len(prompt.split()) * 4 // 3)
        completion_tokens = max(1, len(text.split()) * 4 // 3)
        return Answer(
            text=text,
            sources=sources,
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            latency_ms=int((time.monotonic() - started) * 1000),
            model=_SIMULATED_MODELS.get(self.provider_id, "simulated"),
        )
