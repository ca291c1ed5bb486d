"""Cluster-wide item metrics kept in Redis: finished-item counters and provider-time histograms.

The progress scripts (agent/progress.py) call the `meter` Lua function below inside the very
EVALSHA that counts a finished item, so metering costs no extra round trip per answer and counts
an item exactly when progress counts it (once). Two layouts, both private to this module:
- `oneglanse:metrics:totals`, a hash that never expires: `n:<provider>:<status>` counters,
  `b:<provider>:<le>` histogram buckets (not cumulative) and `s:<provider>` the seconds summed;
- `oneglanse:metrics:minute:<unix minute>`, one hash per minute kept two hours:
  `<provider>:<status>` and `<provider>:b:<le>`, for "the last hour" (API, ops page chart).
Readers (the /metrics collector, the queue overview) read these keys from any process.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

# Provider call time of ok items, in seconds: from a fast cached answer to the 120 s call timeout.
DURATION_BUCKETS: tuple[float, ...] = (
    0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300,
)
INF = "+Inf"
STATUSES = ("ok", "failed", "cancelled")
TOTALS_KEY = "oneglanse:metrics:totals"
MINUTE_KEY_PREFIX = "oneglanse:metrics:minute:"
MINUTE_KEY_TTL_SECONDS = 2 * 3600

# Lua: `meter(totals, minute, minute_ttl, provider, field, le, seconds)` counts one finished item.
# `field` is the progress object's short field (ok|f|c); `le` is '' for an item with no provider time.
METER_LUA = """
local meter_status = {ok='ok', f='failed', c='cancelled'}
local function meter(totals, minute, minute_ttl, p, field, le, seconds)
  local st = meter_status[field]
  redis.call('HINCRBY', totals, 'n:'..p..':'..st, 1)
  redis.call('HINCRBY', minute, p..':'..st, 1)
  if le ~= nil and le ~= '' then
    redis.call('HINCRBY', totals, 'b:'..p..':'..le, 1)
    redis.call('HINCRBYFLOAT', totals, 's:'..p, seconds)
    redis.call('HINCRBY', minute, p..':b:'..le, 1)
  end
  redis.call('EXPIRE', minute, minute_ttl)
end
"""
# The same script without metering: what counting an answer cost before (bench/run.py compares).
METER_LUA_DISABLED = "local function meter() end\n"


def bucket_label(bound: float) -> str:
    return f"{bound:g}"


def duration_bucket(seconds: float) -> str:
    """The `le` label of the first bucket holding `seconds` (the histogram stores buckets uncumulated)."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return bucket_label(bound)
    return INF


def meter_duration(latency_ms: int | None) -> tuple[str, str]:
    """(le, seconds) script arguments for an ok item's provider time; ('', '0') when it has none."""
    if latency_ms is None:
        return "", "0"
    seconds = max(0, latency_ms) / 1000
    return duration_bucket(seconds), f"{seconds:.3f}"


def minute_key(epoch_minute: int) -> str:
    return f"{MINUTE_KEY_PREFIX}{epoch_minute}"


def current_minute_key() -> str:
    return minute_key(int(time.time() // 60))


@dataclass
class ProviderTotals:
    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    buckets: dict[str, int] = field(default_factory=dict)  # le -> items in that bucket alone
    seconds: float = 0.0

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        """Prometheus buckets: each counts every item at or under its bound, ending with +Inf."""
        running, out = 0, []
        for bound in DURATION_BUCKETS:
            running += self.buckets.get(bucket_label(bound), 0)
            out.append((bucket_label(bound), running))
        out.append((INF, running + self.buckets.get(INF, 0)))
        return out


def metrics_totals(client: redis.Redis, provider_ids: tuple[str, ...]) -> dict[str, ProviderTotals]:
    """Every provider's counters since the metrics began (one HGETALL)."""
    return _parse_totals(client.hgetall(TOTALS_KEY), provider_ids)


def _parse_totals(raw: dict, provider_ids: tuple[str, ...]) -> dict[str, ProviderTotals]:
    totals = {p: ProviderTotals() for p in provider_ids}
    for key, value in raw.items():
        kind, _, rest = key.decode().partition(":")
        provider, _, name = rest.partition(":")
        if provider not in totals:
            continue
        if kind == "n" and name in STATUSES:
            totals[provider].finished[name] = int(value)
        elif kind == "b":
            totals[provider].buckets[name] = int(value)
        elif kind == "s":
            totals[provider].seconds = float(value)
    return totals


@dataclass
class MinuteCounts:
    """One provider's finished items in one minute, with the provider-time buckets of its ok items."""

    ok: int = 0
    failed: int = 0
    cancelled: int = 0
    buckets: dict[str, int] = field(default_factory=dict)


def minutes_on(pipeline: redis.client.Pipeline, *, minutes: int = 60, now: float | None = None) -> list[int]:
    """Queue the reads of the last `minutes` minute hashes (oldest first); returns their unix minutes."""
    last = int((now if now is not None else time.time()) // 60)
    epoch_minutes = list(range(last - minutes + 1, last + 1))
    for epoch_minute in epoch_minutes:
        pipeline.hgetall(minute_key(epoch_minute))
    return epoch_minutes


def minutes_parse(raws: list[dict], provider_ids: tuple[str, ...]) -> list[dict[str, MinuteCounts]]:
    series = []
    for raw in raws:
        per_provider = {p: MinuteCounts() for p in provider_ids}
        for key, value in raw.items():
            provider, _, name = key.decode().partition(":")
            counts = per_provider.get(provider)
            if counts is None:
                continue
            if name.startswith("b:"):
                counts.buckets[name[2:]] = int(value)
            elif name in STATUSES:
                setattr(counts, name, int(value))
        series.append(per_provider)
    return series


def quantile_ms(buckets: dict[str, int], q: float) -> int | None:
    """The q-quantile (0..1) of a bucketed histogram in ms, interpolated within its bucket as
    Prometheus's histogram_quantile does; None when it holds nothing."""
    total = sum(buckets.values())
    if not total:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for bound in DURATION_BUCKETS:
        count = buckets.get(bucket_label(bound), 0)
        if count and seen + count >= rank:
            return round((lower + (bound - lower) * (rank - seen) / count) * 1000)
        seen += count
        lower = bound
    return round(DURATION_BUCKETS[-1] * 1000)  # in the +Inf bucket: its lower bound is all we know
