"""Bench settings plus a Redis round-trip counter in every process that loads them (consumers only)."""
from bench.settings import *  # noqa: F403
from bench.redis_counter import redis_counter_install

redis_counter_install()
