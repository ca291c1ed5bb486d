"""The Redis connection pool and client every part of the agent shares (queues, progress, limits)."""
from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def redis_pool() -> redis.ConnectionPool:
    options: dict = {"health_check_interval": 30, "socket_connect_timeout": 5, "max_connections": 256}
    if not settings.REDIS_URL.startswith("unix://"):
        options["socket_keepalive"] = True  # TCP only; unix sockets take no keepalive
    return redis.ConnectionPool.from_url(settings.REDIS_URL, **options)


@functools.cache
def _client_for(pool: redis.ConnectionPool) -> redis.Redis:
    return redis.Redis(connection_pool=pool)


def redis_client() -> redis.Redis:
    """One client per pool, so registered scripts are reused rather than rebuilt on every call."""
    return _client_for(redis_pool())


def connections_reset() -> None:
    """Forget the cached pool and client (after a fork, or when tests move REDIS_URL)."""
    if redis_pool.cache_info().currsize:
        redis_pool().disconnect()
    redis_pool.cache_clear()
    _client_for.cache_clear()
