"""A per-provider request rate limit shared by every consumer on every host, kept in Redis."""
from __future__ import annotations

import uuid

import redis
from django.conf import settings
from redis.commands.core import Script

from agent.connections import redis_client

# A rate-limit slot is held this much longer than the window: a request reaches the provider a
# little after its slot is granted (a new connection, network jitter) and the provider counts
# arrivals, so without it two slots a window apart can land inside one window of the provider's.
RATE_LIMIT_SEND_MARGIN_SECONDS = 0.25

# A sliding-window log: one sorted-set member per granted request, scored by Redis's own clock
# in microseconds, so hosts with skewed clocks still share one timeline. Trim, count and add
# happen in one script, which Redis runs atomically: no two callers can both see room for the
# last slot. Returns 0 when granted, else the microseconds until the oldest grant leaves the window.
_ACQUIRE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
-- Scores as integer strings: Lua's default number formatting would round microseconds away.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
if redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], string.format('%.0f', now), now_parts[1] .. '.' .. now_parts[2] .. ':' .. ARGV[3])
    redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(window / 1000)))
    return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# Bound to no client: each call names its client; redis-py sends EVALSHA and reloads the
# script when a server does not know it (a restart, a different Redis).
_acquire_script = Script(None, _ACQUIRE.encode())


def rate_limit_key(provider: str) -> str:
    return f"oneglanse:ratelimit:{provider}"


def rate_limit_acquire(redis_client: redis.Redis, *, provider: str, limit: int, window_seconds: float = 60.0) -> float:
    """0.0 if a request to `provider` may go now (and it is counted), else seconds until one may.

    Guarantee: no interval of `window_seconds` holds more than `limit` grants, however many
    processes and hosts share the Redis. A refusal records nothing, so waiting callers do not
    push each other back. One round trip per call.
    """
    if limit <= 0:
        raise ValueError(f"limit must be positive, not {limit}")
    window_us = max(1, int(window_seconds * 1_000_000))
    wait_us = _acquire_script(
        keys=[rate_limit_key(provider)], args=[limit, window_us, uuid.uuid4().hex], client=redis_client
    )
    return int(wait_us) / 1_000_000


def rate_limit_of(provider_id: str) -> int | None:
    """AGENT_RATE_LIMIT_<PROVIDER> requests per AGENT_RATE_LIMIT_WINDOW_SECONDS, or None when unlimited."""
    return settings.AGENT_RATE_LIMITS.get(provider_id) or None


def rate_limit_wait(provider_id: str) -> float:
    """0.0 when a request to the provider may go now (it is counted), else seconds until the limit has room."""
    limit = rate_limit_of(provider_id)
    if not limit:
        return 0.0
    return rate_limit_acquire(redis_client(), provider=provider_id, limit=limit,
                              window_seconds=settings.AGENT_RATE_LIMIT_WINDOW_SECONDS + RATE_LIMIT_SEND_MARGIN_SECONDS)
