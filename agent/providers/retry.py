"""How long to wait before the next attempt at a provider call that failed transiently."""
from __future__ import annotations

import random

RETRY_AFTER_MAX_SECONDS = 300.0


def retry_delay(*, attempt: int, retry_after: float | None, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before attempt `attempt + 1`, where `attempt` (1-based) just failed.

    Exponential backoff with full jitter: uniform in 0..min(cap, base * 2**(attempt - 1)), so
    workers that failed together do not come back together. When the provider said when to
    come back (`retry_after`, from Retry-After, retry-after-ms or Gemini's RetryInfo), the wait
    is at least that, but never more than RETRY_AFTER_MAX_SECONDS (300 s), so a bogus hint
    cannot park an item for hours.
    """
    jittered = random.uniform(0.0, min(cap, base * 2 ** min(max(attempt - 1, 0), 32)))
    if retry_after is None:
        return jittered
    return min(max(retry_after, jittered), RETRY_AFTER_MAX_SECONDS)
