"""A child process firing due schedules with no tick lock, as a consumer on another host would.

Kept free of Django imports at module level: a spawned child imports it before Django is set up.
"""
from __future__ import annotations

import os
import time
from datetime import datetime


def fire_in_child(database_url: str, redis_url: str, start_at: float, now_iso: str, results) -> None:
    import django

    os.environ.update(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=database_url, REDIS_URL=redis_url)
    django.setup()
    from agent.services.schedules import schedules_fire_due

    time.sleep(max(0.0, start_at - time.time()))
    report = schedules_fire_due(now=datetime.fromisoformat(now_iso))
    results.put(report.started)
