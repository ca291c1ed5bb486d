"""Fault-injection fixtures: a Redis of the test's own (it may be killed), and the recovery times measured."""
from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from agent.queues import queues_reset
from tests.faults.support import RECOVERY_TIMES, FaultRedis


@pytest.fixture
def fault_redis():
    """A redis-server for this test only; the test process and its consumers both point at it."""
    server = FaultRedis()
    previous = django_settings.REDIS_URL
    django_settings.REDIS_URL = server.url
    queues_reset()
    try:
        yield server
    finally:
        django_settings.REDIS_URL = previous
        queues_reset()
        server.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    if RECOVERY_TIMES:
        terminalreporter.section("fault injection: measured recovery times")
        for line in RECOVERY_TIMES:
            terminalreporter.write_line(line)
