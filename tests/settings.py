"""Test settings: the real settings with safe test values for what production must set."""
import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DJANGO_HTTPS", "false")
os.environ.setdefault("AGENT_SUBMIT_RATE", "100000/min")
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")

from oneglanse.settings import *  # noqa: F403
from oneglanse.settings import DATABASES, VAR_DIR

# One test database per test run, so two runs on one machine never share (and destroy) one.
# Consumer subprocesses are given the test database's URL explicitly by tests/conftest.py.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("DJANGO_TEST_DATABASE_NAME") or str(VAR_DIR / f"test-{os.getpid()}.sqlite3")
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("DJANGO_TEST_DATABASE_NAME") or f"test_oneglanse_{os.getpid()}"}

# Debian's SQLite allows 250,000 bound variables; tests get a stock build's 32,766 (see the module).
from tests.sqlite_stock_limits import sqlite_stock_limits_apply

sqlite_stock_limits_apply()
