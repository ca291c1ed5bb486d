"""How visibility follows the agent: analyse an answer as it is recorded (its findings are stored by
the agent's UPDATE that records it), write a run's figures when it closes, and run the visibility
sweep in every queue consumer (connected in VisibilityConfig.ready).

Each receiver catches its own failures: an answer or a run never pays for an analysis that went
wrong; the run's close analyses again an answer recorded without findings, and the sweep writes
the figures of a run whose close could not.
"""

from __future__ import annotations

import logging

from agent.models import JobGroup
from visibility.selectors import FINISHED_RUN_STATUSES

logger = logging.getLogger(__name__)


def on_answer_findings(sender, *, group_id: str = "", text: str = "", sources=None, **kwargs) -> dict | None:
    from visibility.services.analysis import FINDINGS_KEY, answer_findings

    if not group_id:
        return None  # a message from an older release: the run's close analyses the answer
    findings = answer_findings(group_id=group_id, text=text, sources=sources or [])
    return None if findings is None else {FINDINGS_KEY: findings}


def on_job_group_closed(sender, *, group_id, **kwargs) -> None:
    from visibility.services.aggregates import job_group_visibility_aggregate

    try:
        group = JobGroup.objects.filter(id=group_id, status__in=FINISHED_RUN_STATUSES).first()
        if group is not None:
            job_group_visibility_aggregate(group=group)
    except Exception:
        logger.exception("visibility figures of run %s failed; the visibility sweep writes them", group_id)


def on_consumer_started(sender, **kwargs) -> None:
    from visibility.services.sweep import visibility_sweeper_start

    visibility_sweeper_start()
