"""Test settings: the real settings with safe test values for what production must set."""
import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DJANGO_HTTPS", "false")
os.environ.setdefault("AGENT_SUBMIT_RATE", "100000/min")
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")

from oneglanse.settings import *  # noqa: E402,F403
