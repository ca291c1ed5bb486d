"""How visibility follows the agent: analyse an answer as it is recorded and write its rows
(visibility/services/recorded.py), write a run's figures when it closes, and run the findings
writer and the visibility sweep in every queue consumer (connected in VisibilityConfig.ready).

Each receiver catches its own failures: an answer or a run never pays for an analysis that went
wrong; the sweep finds the answer later and analyses it again.
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


def on_answer_recorded(
    sender, *, item_id: int, group_id: str = "", provider: str = "", findings=None, **kwargs
) -> None:
    from visibility.services.analysis import RecordedFindings, findings_unpack
    from visibility.services.recorded import findings_writer

    try:
        # Without findings (their analysis failed) the answer is left to the run's close and the sweep.
        if (packed := findings_unpack(findings)) is not None:
            findings_writer.save(RecordedFindings(item_id=item_id, group_id=group_id, provider=provider, findings=packed))
    except Exception:
        logger.exception("analysis of item %s failed; the visibility sweep retries it", item_id)


def on_job_group_closed(sender, *, group_id, **kwargs) -> None:
    from visibility.services.aggregates import job_group_visibility_aggregate
    from visibility.services.recorded import job_group_findings_write

    try:
        group = JobGroup.objects.filter(id=group_id, status__in=FINISHED_RUN_STATUSES).first()
        if group is not None:
            job_group_findings_write(group_id=group.id)
            job_group_visibility_aggregate(group=group)
    except Exception:
        logger.exception("visibility figures of run %s failed; `manage.py visibility_reanalyse` rewrites them", group_id)


def on_consumer_started(sender, **kwargs) -> None:
    from visibility.services.recorded import findings_writer
    from visibility.services.sweep import visibility_sweeper_start

    findings_writer.start()
    visibility_sweeper_start()
