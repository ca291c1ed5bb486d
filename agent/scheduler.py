"""The schedule tick inside every consumer: fires due schedules and releases due delayed runs.

No extra process: like the recovery sweep, a thread of each `run_huey` consumer ticks every
AGENT_SCHEDULE_TICK_SECONDS (with jitter). Not a Huey periodic task: those are checked once a
minute and wait on the queue behind the backlog they would be scheduling, while a slot must
start within 30 s whatever the queues hold. A short Redis lock lets one consumer of the cluster
do a tick's work while the others skip it; correctness never rests on it: a slot is claimed by
a conditional update and a unique constraint in the database, and a delayed run by a
conditional status change, so two ticks at once still start each run once.
"""
from __future__ import annotations

import logging
import random
import threading
import uuid

import redis
from django.conf import settings
from django.db import close_old_connections, connection

from agent.connections import redis_client
from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

TICK_LOCK_KEY = "oneglanse:schedules:tick"


class ScheduleTicker(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="schedule-ticker", daemon=True)
        self.stop_event = threading.Event()
        self.token = uuid.uuid4().hex

    def run(self) -> None:
        interval = settings.AGENT_SCHEDULE_TICK_SECONDS
        while not self.stop_event.wait(interval * random.uniform(0.8, 1.2)):
            self.tick(interval)

    def tick(self, interval: float) -> None:
        from agent.services.schedules import job_groups_release_due, schedules_fire_due

        client = redis_client()
        try:
            # The lock lives one interval: a tick that takes longer lets the next consumer help.
            if not client.set(TICK_LOCK_KEY, self.token, nx=True, px=max(100, int(interval * 1000))):
                return
        except redis.RedisError as exc:
            logger.warning("schedule tick skipped: Redis unavailable (%s)", exc)
            return
        try:
            close_old_connections()
            released = job_groups_release_due()
            report = schedules_fire_due()
            if released or report:
                logger.info("schedule tick: %d delayed runs released; %s", released, report)
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            logger.warning("schedule tick skipped: the database is unavailable (%s)", exc)
        except Exception:  # Redis may be away; the next tick tries again
            logger.exception("schedule tick failed; the next tick tries again")
        finally:
            connection.close()


def schedule_ticker_start() -> ScheduleTicker:
    ticker = ScheduleTicker()
    ticker.start()
    return ticker
