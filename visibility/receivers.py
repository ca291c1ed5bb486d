"""How visibility follows the agent: analyse an answer when it is recorded, write a run's figures when
it closes, and run the visibility sweep in every queue consumer (connected in VisibilityConfig.ready).

Each receiver catches its own failures: an answer or a run never pays for an analysis that went
wrong; the sweep finds the answer later and analyses it again.
"""

from __future__ import annotations

import logging

from agent.models import JobGroup
from visibility.selectors import FINISHED_RUN_STATUSES

logger = logging.getLogger(__name__)


def on_answer_recorded(
    sender, *, item_id: int, group_id: str = "", provider: str = "", text: str = "", sources=None, **kwargs
) -> None:
    from visibility.services.analysis import RecordedAnswer, answer_analyse

    try:
        # A sender that knows no run (a message from an older release) leaves the answer to be read back.
        recorded = (
            RecordedAnswer(item_id=item_id, group_id=group_id, provider=provider, text=text, sources=sources or [])
            if group_id else None
        )
        answer_analyse(item_id=item_id, recorded=recorded)
    except Exception:
        logger.exception("analysis of item %s failed; the visibility sweep retries it", item_id)


def on_job_group_closed(sender, *, group_id, **kwargs) -> None:
    from visibility.services.aggregates import job_group_visibility_aggregate

    try:
        group = JobGroup.objects.filter(id=group_id, status__in=FINISHED_RUN_STATUSES).first()
        if group is not None:
            job_group_visibility_aggregate(group=group)
    except Exception:
        logger.exception("visibility figures of run %s failed; `manage.py visibility_reanalyse` rewrites them", group_id)


def on_consumer_started(sender, **kwargs) -> None:
    from visibility.services.sweep import visibility_sweeper_start

    visibility_sweeper_start()
