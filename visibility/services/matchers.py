"""Compiled brand matchers, cached per process: by (workspace, brand revision) for the sweep, and the
workspace's current one, trusted for VISIBILITY_MATCHER_TTL seconds, for the analysis of each answer."""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.db import connection

from agent.models import JobGroup, JobItem
from visibility.detection import BrandTerms, Matcher
from visibility.models import AnalysisState, Brand

_MATCHER_CACHE_SIZE = 256
_matchers: dict[tuple, Matcher] = {}


def matcher_at(*, workspace_id, revision: int, fresh: bool = False) -> Matcher:
    """The workspace's matcher at this brand revision, compiled once per process and reused.

    `fresh` reads the brands again even when cached: a re-analysis on demand must also repair
    brands changed without the services (a shell, a data migration), which left the revision as it was.
    """
    key = (uuid.UUID(str(workspace_id)).hex, revision)
    matcher = None if fresh else _matchers.get(key)
    if matcher is None:
        brands = (
            Brand.objects.filter(workspace_id=workspace_id)
            .order_by("id")
            .values_list("id", "name", "aliases", "domains", "match_case")
        )
        matcher = Matcher(
            [
                BrandTerms(brand_id=id_, terms=(name, *aliases), domains=tuple(domains), match_case=match_case)
                for id_, name, aliases, domains, match_case in brands
            ]
        )
        if len(_matchers) >= _MATCHER_CACHE_SIZE:
            _matchers.clear()
        _matchers[key] = matcher
    return matcher


def uuid_db(value):
    """A UUID as the database stores it (SQLite keeps 32 hex digits), for raw SQL parameters."""
    field = JobItem._meta.get_field("group").target_field
    return field.get_db_prep_value(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)), connection)


# A run never moves to another workspace: its workspace is read once per process.
_GROUP_WORKSPACES_MAX = 10_000
_group_workspaces: dict[str, object] = {}


def group_workspace_key(group_id: str):
    key = _group_workspaces.get(group_id)
    if key is None:
        workspace_id = JobGroup.objects.filter(id=group_id).values_list("workspace_id", flat=True).first()
        if workspace_id is None:
            return None
        if len(_group_workspaces) >= _GROUP_WORKSPACES_MAX:
            _group_workspaces.clear()
        key = _group_workspaces[group_id] = uuid_db(workspace_id)
    return key


# workspace key -> (brand revision, matcher, monotonic time until which it is trusted)
_current_matchers: dict[object, tuple[int, Matcher, float]] = {}


def cached_matcher(*, workspace_key) -> tuple[int, Matcher]:
    """The workspace's brand revision and its matcher, read again at most every VISIBILITY_MATCHER_TTL s.

    The revision is read before the brands, so a matcher is never stamped with a revision newer
    than its brands (an older one only costs a re-analysis). Per workspace and process, that is two
    SELECTs every TTL, not per answer. A brand change made in this process
    forgets the entry at once (`cached_matcher_forget`); other processes see it within the TTL,
    and what they analysed meanwhile is analysed again when its run closes.
    """
    now = time.monotonic()
    cached = _current_matchers.get(workspace_key)
    if cached is not None and cached[2] > now:
        return cached[0], cached[1]
    revision = (
        AnalysisState.objects.filter(workspace_id=workspace_key).values_list("revision", flat=True).first() or 0
    )
    # Brands read again even at the same revision: one changed without the services (a shell) is
    # picked up within the TTL too, instead of failing every analysis of the workspace.
    matcher = matcher_at(workspace_id=workspace_key, revision=revision, fresh=True)
    if len(_current_matchers) >= _MATCHER_CACHE_SIZE:
        _current_matchers.clear()
    _current_matchers[workspace_key] = (revision, matcher, now + settings.VISIBILITY_MATCHER_TTL)
    return revision, matcher


def cached_matcher_forget(*, workspace_id) -> None:
    _current_matchers.pop(uuid_db(workspace_id), None)
