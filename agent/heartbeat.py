"""Heartbeats of running items: one background thread per process marks them all alive.

A provider call can legitimately outlast the recovery window (4 attempts x 120 s), so the
recovery sweep must tell a slow item from a lost one. Rather than one write per item, a
single thread refreshes every running item of this process in one UPDATE per beat.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

_running: set[int] = set()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def beat_interval() -> float:
    return max(0.2, settings.AGENT_RECOVERY_SECONDS / 4)


@contextmanager
def beating(item_id: int):
    """Keep `item_id`'s heartbeat fresh while the block runs."""
    _ensure_thread()
    with _lock:
        _running.add(item_id)
    try:
        yield
    finally:
        with _lock:
            _running.discard(item_id)


def heartbeat_once() -> int:
    """Refresh the heartbeat of every item this process is running; returns how many."""
    from agent.models import JobItem

    with _lock:
        item_ids = list(_running)
    if not item_ids:
        return 0
    return JobItem.objects.filter(id__in=item_ids, status=JobItem.Status.RUNNING).update(heartbeat_at=timezone.now())


def _loop(stop: threading.Event) -> None:
    while not stop.wait(beat_interval()):
        try:
            close_old_connections()
            heartbeat_once()
        except DATABASE_UNAVAILABLE_ERRORS as exc:  # the next beat tries again
            logger.warning("heartbeat skipped: the database is unavailable (%s)", exc)
        except Exception:
            logger.warning("heartbeat failed; retrying at the next beat", exc_info=True)
        finally:
            connection.close()


def _ensure_thread() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, args=(threading.Event(),), name="item-heartbeat", daemon=True)
            _thread.start()
