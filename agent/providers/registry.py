"""The backend that answers for each provider id, chosen by explicit configuration."""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agent.providers.base import Provider
from oneglanse.provider_ids import PROVIDER_IDS


def simulated_failure_rates(raw: str) -> dict[str, float]:
    """Parse AGENT_SIMULATED_FAILURE_RATE: "0.1" for every provider, or "gemini=1.0,chatgpt=0.1"."""
    raw = (raw or "").strip()
    rates = dict.fromkeys(PROVIDER_IDS, 0.0)
    if not raw:
        return rates
    try:
        if "=" not in raw:
            return dict.fromkeys(PROVIDER_IDS, _rate(float(raw)))
        for part in filter(None, (p.strip() for p in raw.split(","))):
            provider_id, value = (s.strip() for s in part.split("=", 1))
            if provider_id not in PROVIDER_IDS:
                raise ValueError(f"unknown provider {provider_id!r}")
            rates[provider_id] = _rate(float(value))
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"AGENT_SIMULATED_FAILURE_RATE={raw!r} is not valid ({exc}); use a number 0..1 "
            f"or provider=rate pairs such as 'gemini=1.0,chatgpt=0.1' (providers: {', '.join(PROVIDER_IDS)})."
        ) from None
    return rates


def _rate(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{value} is outside 0..1")
    return value


def provider_for(provider_id: str) -> Provider:
    """The configured backend for one provider (never a silent fallback to another backend)."""
    if provider_id not in PROVIDER_IDS:
        raise ImproperlyConfigured(f"Unknown provider {provider_id!r}.")
    if settings.AGENT_PROVIDER_BACKEND == "live":
        from agent.providers.live import live_provider

        return live_provider(provider_id)
    from agent.providers.simulated import SimulatedProvider

    return SimulatedProvider(
        provider_id,
        latency_ms=settings.AGENT_SIMULATED_LATENCY_MS,
        failure_rate=simulated_failure_rates(settings.AGENT_SIMULATED_FAILURE_RATE)[provider_id],
    )
