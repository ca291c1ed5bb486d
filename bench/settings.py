"""Benchmark settings: the real settings, with bench-safe defaults and every throttle raised.

AGENT_SUBMIT_RATE is raised so repeated submissions are never refused; bench/run.py prints
this (and the other guards it sets) with its results.
"""
import os

os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DJANGO_HTTPS", "false")
os.environ.setdefault("AGENT_SUBMIT_RATE", "1000000/min")
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
os.environ.setdefault("AGENT_SIMULATED_FAILURE_RATE", "0")

from oneglanse.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# The in-process API client of scenario 1 calls itself "testserver".
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405
