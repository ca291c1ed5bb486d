"""A per-provider request rate limit shared by every consumer on every host, kept in Redis."""
from __future__ import annotations

import uuid

import redis
from redis.commands.core import Script

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
