"""A finished run's visibility and a workspace's trend, kept encoded in Django's cache (Redis).

A key names everything its body is computed from: the run or workspace (and the trend's filter),
ANALYSIS_VERSION, the workspace's brand revision and re-analysis state, and its stored per-run
figures (their count and newest id: figures are rewritten by delete and insert, so ids only grow).
A finished run's answers are analysed again only before its figures are rewritten (its close, a
re-analysis). Any change makes a new key, so a stale body is never read; old keys simply expire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max

from agent.models import JobGroup
from visibility.detection import ANALYSIS_VERSION
from visibility.models import AnalysisState, RunStat
from visibility.selectors import FINISHED_RUN_STATUSES, TrendFilter
from workspaces.models import Workspace

logger = logging.getLogger(__name__)


def _analysis_key(workspace_id) -> str:
    state = (
        AnalysisState.objects.filter(workspace_id=workspace_id)
        .values_list("revision", "reanalysed_revision", "reanalysed_version")
        .first()
    )
    return ".".join(map(str, (ANALYSIS_VERSION, *(state or ("none",)))))


def _figures_key(stats) -> str | None:
    figures = stats.aggregate(n=Count("id"), last=Max("id"))
    return None if figures["last"] is None else f"{figures['n']}.{figures['last']}"


def job_group_visibility_key(*, group: JobGroup) -> str | None:
    """The cache key of a finished run's visibility; None until it is closed and its figures are written."""
    if group.status not in FINISHED_RUN_STATUSES:
        return None
    if group.status == JobGroup.Status.CANCELLED and group.finished_at is None:
        return None  # cancelled but not closed yet: it still records the answers it had in flight
    figures = _figures_key(RunStat.objects.filter(group=group))
    if figures is None:
        return None
    return f"visibility:run:{group.id}:{_analysis_key(group.workspace_id)}:{figures}"


def workspace_visibility_trend_key(*, workspace: Workspace, trend: TrendFilter) -> str:
    stats = RunStat.objects.filter(workspace=workspace)
    filters = ".".join(str(value) for value in (trend.date_from, trend.date_to, trend.provider, trend.brand_id))
    return f"visibility:trend:{workspace.id}:{filters}:{_analysis_key(workspace.id)}:{_figures_key(stats)}"


def cached_body(key: str | None, build: Callable[[], bytes]) -> bytes:
    """The body stored under `key`, or `build()` stored there; the cache being away only costs the time."""
    if key is None or settings.VISIBILITY_CACHE_SECONDS <= 0:
        return build()
    try:
        body = cache.get(key)
    except redis.RedisError as exc:  # the figures are still computed, only slower
        logger.warning("visibility cache unavailable (%s)", exc)
        return build()
    if body is None:
        body = build()
        try:
            cache.set(key, body, timeout=settings.VISIBILITY_CACHE_SECONDS)
        except redis.RedisError as exc:
            logger.warning("visibility cache unavailable (%s)", exc)
    return body
