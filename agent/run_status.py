"""The status endpoint's read: a run's progress for a member, without SQL on the hot path.

Every open run page polls the status every 2 s, so this read is the most frequent request the
service answers. It needs two facts besides the progress itself, both kept in Django's cache
(Redis, shared by every process): which workspaces the caller belongs to (workspaces.access,
dropped on every membership change) and the run's workspace, with its final progress once the
run is completed or failed (neither changes afterwards). One `MGET` fetches both; a live run's
progress is then one `HGETALL`. Whenever that cache cannot answer (first read, a run that has
just closed, Redis without the live object) the read takes the full path through the database
(`progress_get`), so the answer is always the one the database path gives.

When a run closes, fails or is cancelled, its entry is marked "changed" for a few seconds and
readers fill entries only with `cache.add`: a reader that loaded the run just before it closed
cannot store the stale state over the mark (the same scheme as workspaces.access).
"""
from __future__ import annotations

import logging
import uuid

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisSerializer
from django.db import transaction

from agent.connections import redis_client
from agent.models import JobGroup
from agent.progress import progress_decode, progress_get, progress_key, progress_read_live
from oneglanse.exceptions import NotFound
from workspaces.access import member_of_cache_key, workspace_ids_of_user

logger = logging.getLogger(__name__)

RUN_ENTRY_TTL_SECONDS = 24 * 3600  # bounds memory only; entries are exact while they live
CHANGED_MARK_SECONDS = 5
_CHANGED = "changed"
_FINAL_STATES = (JobGroup.Status.COMPLETED, JobGroup.Status.FAILED)  # their mirror never changes again


def _run_key(group_id) -> str:
    return f"agent:run-status:{group_id}"


def job_group_progress_for_user(*, user, group_id) -> dict:
    """The run's progress object if `user` belongs to its workspace; else, or for a malformed id, NotFound."""
    try:
        group_id = str(uuid.UUID(str(group_id)))
    except ValueError:
        raise NotFound("Run not found.") from None
    member_key, run_key = member_of_cache_key(user.id), _run_key(group_id)
    try:
        cached, live = _cached_with_live(member_key, run_key, group_id)
    except redis.RedisError:
        cached, live = {}, None  # the database path below answers alone
    entry = cached.get(run_key)
    if isinstance(entry, tuple):
        workspace_id, final = entry
        if workspace_id not in workspace_ids_of_user(user_id=user.id, cached=cached.get(member_key)):
            raise NotFound("Run not found.")
        if final is not None:
            return final
        if live is _NOT_READ:
            try:
                live = progress_read_live(group_id)
            except redis.RedisError as exc:
                logger.warning("progress of group %s read from the database: Redis unavailable (%s)", group_id, exc)
                live = None
        if live is not None:
            return live
    group = JobGroup.objects.filter(id=group_id).first()
    if group is None or group.workspace_id not in workspace_ids_of_user(user_id=user.id, cached=cached.get(member_key)):
        raise NotFound("Run not found.")
    if entry is None:  # absent, not marked changed
        final = group.progress if group.status in _FINAL_STATES and group.progress else None
        _cache_quietly(cache.add, run_key, (group.workspace_id, final), RUN_ENTRY_TTL_SECONDS)
    return progress_get(group)


_NOT_READ = object()
_cache_values = RedisSerializer()


def _cached_with_live(member_key: str, run_key: str, group_id: str) -> tuple[dict, object]:
    """Both cache entries, and the run's live progress object (None when Redis has none).

    Django's cache is the Redis that holds the progress objects in every deployment: then one
    pipeline reads all three in a single round trip (on a live run's poll the live object is
    needed anyway; on a finished one it costs a few microseconds of the same trip). With any
    other cache the live object is `_NOT_READ` and read afterwards when needed.
    """
    default = settings.CACHES["default"]
    if (default["BACKEND"] != "django.core.cache.backends.redis.RedisCache" or default["LOCATION"] != settings.REDIS_URL
            or "serializer" in default.get("OPTIONS", {})):
        return cache.get_many([member_key, run_key]), _NOT_READ
    pipeline = redis_client().pipeline(transaction=False)
    pipeline.mget([cache.make_key(member_key), cache.make_key(run_key)])
    pipeline.hgetall(progress_key(group_id))
    (member_raw, run_raw), live_raw = pipeline.execute()
    cached = {key: _cache_values.loads(raw) for key, raw in ((member_key, member_raw), (run_key, run_raw)) if raw is not None}
    return cached, progress_decode(live_raw)


def job_group_status_changed(group_id) -> None:
    """Call when a run's status leaves queued/running: status reads go to the database until it settles."""
    key = _run_key(group_id)
    _cache_quietly(cache.set, key, _CHANGED, CHANGED_MARK_SECONDS)
    transaction.on_commit(lambda: _cache_quietly(cache.set, key, _CHANGED, CHANGED_MARK_SECONDS))


def _cache_quietly(write, *args) -> None:
    # Closing a run or answering a poll never fails because the cache is away; without the
    # cache the reads take the database path.
    try:
        write(*args)
    except redis.RedisError as exc:
        logger.warning("status cache not written (%s)", exc)
