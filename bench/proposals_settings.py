"""Instrumented bench settings plus the prototyped core changes of bench/proposals.py (P5)."""
from bench.instrumented_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.proposals.ProposalsConfig"]  # noqa: F405
