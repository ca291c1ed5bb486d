"""An offline backend that answers like a provider would, for demos, tests and benchmarks.

Its answers name the workspace's tracked brands and cite their sites at plausible, per-provider
rates, so the visibility figures of a simulated run look like a real one's. An answer is
deterministic per (provider, prompt, item, sample): the same item asked again says the same thing.
Brands are read through the app registry (the agent does not import the visibility app) and cached
per process for SIMULATED_BRANDS_TTL seconds, so answering costs no database query per answer.
"""
from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass

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
# How readily each simulated assistant names brands at all, and cites a named brand's own site:
# search-first assistants (Perplexity) cite more, Claude names fewer products.
_MENTION_FACTOR = {"chatgpt": 1.0, "perplexity": 1.1, "gemini": 0.9, "claude": 0.75}
_CITE_RATE = {"chatgpt": 0.35, "perplexity": 0.6, "gemini": 0.4, "claude": 0.2}
_OWN_BASE_RATE = 0.45
SIMULATED_BRANDS_TTL = 30.0


@dataclass(frozen=True)
class SimulatedBrand:
    name: str
    domains: tuple[str, ...] = ()
    is_own: bool = False


_brands_cache: dict[str, tuple[float, tuple[SimulatedBrand, ...]]] = {}
_brands_lock = threading.Lock()


def workspace_brands(workspace_id) -> tuple[SimulatedBrand, ...]:
    """The workspace's tracked brands, cached per process for SIMULATED_BRANDS_TTL seconds."""
    if not workspace_id:
        return ()
    key, now = str(workspace_id), time.monotonic()
    cached = _brands_cache.get(key)
    if cached and now - cached[0] < SIMULATED_BRANDS_TTL:
        return cached[1]
    from django.apps import apps

    brands: tuple[SimulatedBrand, ...] = ()
    if apps.is_installed("visibility"):
        model = apps.get_model("visibility", "Brand")
        brands = tuple(
            SimulatedBrand(name=name, domains=tuple(domains or ()), is_own=is_own)
            for name, domains, is_own in model.objects.filter(workspace_id=workspace_id)
            .order_by("id")
            .values_list("name", "domains", "is_own")
        )
    with _brands_lock:
        if len(_brands_cache) > 1000:
            _brands_cache.clear()
        _brands_cache[key] = (now, brands)
    return brands


def _brand_rate(provider_id: str, brand: SimulatedBrand, lift: float) -> float:
    """A brand's chance to be named in one answer: stable per brand, scaled per provider."""
    if brand.is_own:
        base = _OWN_BASE_RATE + lift
    else:
        base = 0.3 + (int(hashlib.sha256(brand.name.encode()).hexdigest()[:4], 16) % 45) / 100
    return max(0.0, min(0.95, base * _MENTION_FACTOR.get(provider_id, 1.0)))


def _names_joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def simulated_answer(
    provider_id: str, prompt: str, *, seed_text: str, brands: tuple[SimulatedBrand, ...] = (), lift: float = 0.0
) -> tuple[str, list[dict]]:
    """The (text, sources) of one simulated answer; `lift` raises the own brand's rate (demo history)."""
    seed = int(hashlib.sha256(f"{provider_id}:{prompt}:{seed_text}".encode()).hexdigest()[:12], 16)
    rng = random.Random(seed)
    topic = " ".join(prompt.rstrip("?").split()[-3:]).lower() or "software"
    slug = "-".join(topic.split())
    # Like the real providers, some pages are cited by the answer and the rest only retrieved.
    sites = rng.sample(_SITES, k=rng.randint(2, 4))
    picks = [(url.format(slug=slug), title.format(topic=topic, slug=slug)) for url, title in sites]
    cited_count = rng.randint(1, len(picks) - 1)
    named = [brand for brand in brands if rng.random() < _brand_rate(provider_id, brand, lift)]
    rng.shuffle(named)
    brand_sites = [
        (f"https://{rng.choice(('www.', 'blog.', ''))}{brand.domains[0]}/", f"{brand.name} — official site")
        for brand in named
        if brand.domains and rng.random() < _CITE_RATE.get(provider_id, 0.3)
    ]
    sources = sources_build(cited=[*brand_sites, *picks[:cited_count]], found=picks[cited_count:])
    shortlist = (
        f"Teams most often shortlist {_names_joined([b.name for b in named])}. "
        if named
        else "No single product stands out for every team. "
    )
    text = (
        f"[Simulated {provider_id} answer] For \"{prompt.strip()}\", commonly recommended options "
        f"depend on team size and budget. {shortlist}"
        f"Reviewers on {', '.join(s['domain'] for s in sources if s['cited'])} "
        f"compare pricing, integrations and support; shortlist two or three and run a trial."
    )
    return text, sources


class SimulatedProvider:
    """Answers offline. Its answers are stored with backend "simulated" and shown as such."""

    backend = "simulated"

    def __init__(self, provider_id: str, *, latency_ms: int, failure_rate: float) -> None:
        self.provider_id = provider_id
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate

    def ask(self, prompt: str, *, item_id: int | None = None, sample: int = 1, workspace_id=None) -> Answer:
        """One answer; with `item_id` and `workspace_id` (the worker passes them) it names the workspace's
        brands and differs per item and sample; without, it is seeded by provider and prompt alone."""
        started = time.monotonic()
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000 * random.uniform(0.8, 1.2))
        if self.failure_rate and random.random() < self.failure_rate:
            raise PermanentProviderError(self.provider_id, "simulated failure (AGENT_SIMULATED_FAILURE_RATE)")
        text, sources = simulated_answer(
            self.provider_id,
            prompt,
            seed_text=f"{item_id}:{sample}" if item_id is not None else "",
            brands=workspace_brands(workspace_id),
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
