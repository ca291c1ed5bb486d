"""What the agent announces to other apps, so they can react without the agent importing them.

- `answer_findings(group_id, provider, text, sources)`: an ok answer is about to be recorded; a
  receiver returns a dict of what it derives from it (JSON values, top-level keys its own), and the
  merged dicts are stored on the item's row (`JobItem.findings`) by the UPDATE that records the answer.
- `job_group_closed(group_id)`: a run was closed (completed or cancelled) and its row committed.
- `consumer_started(queue)`: a queue consumer process is up; apps start their periodic work here.

Every receiver runs through `send_robust`-style guards: a receiver's failure is logged and never
reaches the answer or the run it was told about.
"""
from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

answer_findings = Signal()
job_group_closed = Signal()
consumer_started = Signal()


def announce(signal: Signal, **kwargs) -> None:
    """Send `signal` to every receiver; a failing receiver is logged, never raised to the sender."""
    for receiver, result in signal.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            logger.error("receiver %s of %s failed: %r", getattr(receiver, "__qualname__", receiver), kwargs, result,
                         exc_info=(type(result), result, result.__traceback__))


def findings_collect(signal: Signal, **kwargs) -> dict | None:
    """The merged dicts `signal`'s receivers return (None when none returns one); a failing receiver is
    logged and contributes nothing."""
    merged: dict = {}
    for receiver, result in signal.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            logger.error("receiver %s of %s failed: %r", getattr(receiver, "__qualname__", receiver),
                         {k: v for k, v in kwargs.items() if k not in ("text", "sources")}, result,
                         exc_info=(type(result), result, result.__traceback__))
        elif isinstance(result, dict):
            merged.update(result)
    return merged or None
