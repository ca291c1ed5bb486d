"""Bench settings plus a Redis round-trip counter in every process that loads them (consumers only)."""
from bench.redis_counter import redis_counter_install
from bench.settings import *  # noqa: F403

redis_counter_install()
