"""The live progress object of a group: a Redis hash updated only by Lua scripts, rebuilt from the database.

Layout (private to this module): `job:{id}:result` is a hash of counters and states; `job:{id}:done`
is the set of item ids already counted, so counting an item is idempotent: a redelivered item, or
a rebuild racing a worker, never counts twice. The result has AGENT_PROGRESS_TTL, refreshed on every
update; the done set lives AGENT_GROUP_DEADLINE_SECONDS longer while the group is open (a queue
paused for hours lets the result expire), so the cluster metrics that the same scripts keep
(agent/metrics.py) count every item once even when the result is rebuilt.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db.models import Count

from agent import metrics, outcomes
from agent.connections import redis_client
from agent.models import JobGroup, JobGroupProvider, JobItem
from agent.outcomes import COMPLETED, PENDING, PROCESSING
from agent.progress_lua import FINISH_LUA, FLAG_LUA, REBUILD_LUA, START_LUA
from agent.queue_ops import PAUSED_KEY, paused_cache

logger = logging.getLogger(__name__)

_OUTCOME_FIELD = {JobItem.Status.OK: "ok", JobItem.Status.FAILED: "f", JobItem.Status.CANCELLED: "c"}


def progress_key(group_id) -> str:
    return f"job:{group_id}:result"


def _done_key(group_id) -> str:
    return f"job:{group_id}:done"


class _Scripts:
    def __init__(self) -> None:
        self._client: redis.Redis | None = None

    def bind(self) -> _Scripts:
        client = redis_client()
        if self._client is not client:
            self._client = client
            self.finish = client.register_script(FINISH_LUA)
            self.start = client.register_script(START_LUA)
            self.rebuild = client.register_script(REBUILD_LUA)
            self.flag = client.register_script(FLAG_LUA)
        return self


_scripts = _Scripts()


@dataclass(frozen=True)
class ItemCounted:
    counted: bool
    provider_done: bool
    group_done: bool


def _ttl() -> int:
    return settings.AGENT_PROGRESS_TTL


def _done_ttl() -> int:
    return int(settings.AGENT_PROGRESS_TTL + settings.AGENT_GROUP_DEADLINE_SECONDS)


def _keys(group_id) -> list[str]:
    """The keys every counting script touches: progress result and done set, metrics totals and minute."""
    return [progress_key(group_id), _done_key(group_id), metrics.TOTALS_KEY, metrics.current_minute_key()]


def _rebuild_args(snapshot: dict) -> list:
    return [_ttl(), _encode_snapshot(snapshot), _done_ttl(), metrics.MINUTE_KEY_TTL_SECONDS]


def _snapshot(group: JobGroup) -> dict:
    """The progress object's inputs as the database has them now."""
    providers = list(group.providers)
    expected_by_provider = dict.fromkeys(providers, 0)
    for row in JobItem.objects.filter(group=group).values("provider").annotate(n=Count("id")):
        expected_by_provider[row["provider"]] = row["n"]
    finished = [
        [str(item_id), provider, _OUTCOME_FIELD[status],
         *metrics.meter_duration(latency_ms if status == JobItem.Status.OK else None)]
        for item_id, provider, status, latency_ms in JobItem.objects.filter(group=group, status__in=JobItem.FINISHED)
        .values_list("id", "provider", "status", "latency_ms")
        .iterator(chunk_size=2000)
    ]
    provider_rows = list(JobGroupProvider.objects.filter(group=group).values("provider", "status", "error"))
    started = {row["provider"] for row in provider_rows if row["status"] != JobGroupProvider.Status.PENDING}
    started |= set(
        JobItem.objects.filter(group=group, status=JobItem.Status.RUNNING).values_list("provider", flat=True).distinct()
    )
    errors = {row["provider"]: row["error"] for row in provider_rows if row["error"]}
    if not errors:
        for provider, error in (
            JobItem.objects.filter(group=group, status=JobItem.Status.FAILED)
            .order_by("provider", "-finished_at")
            .values_list("provider", "error")
        ):
            errors.setdefault(provider, error)
    return {
        "providers": providers,
        "expected": group.expected_responses,
        "expectedByProvider": expected_by_provider,
        "totalPrompts": group.total_prompts,
        "samples": group.samples,
        "finished": finished,
        "started": sorted(started),
        "errors": errors or {},
        "cancelled": group.status == JobGroup.Status.CANCELLED,
        "error": group.error or "",
    }


def _encode_snapshot(snapshot: dict) -> str:
    # cjson decodes {} as an empty table either way, but [] must not become {} for ipairs.
    return json.dumps(snapshot)


def progress_create_on(pipeline: redis.client.Pipeline, group: JobGroup, expected_by_provider: dict[str, int]) -> None:
    """Queue the creation of a new group's progress object on the caller's pipeline (submit)."""
    snapshot = {
        "providers": list(group.providers),
        "expected": group.expected_responses,
        "expectedByProvider": expected_by_provider,
        "totalPrompts": group.total_prompts,
        "samples": group.samples,
        "finished": [],
        "started": [],
        "errors": {},
        "cancelled": False,
        "error": "",
    }
    _scripts.bind().rebuild(keys=_keys(group.id), args=_rebuild_args(snapshot), client=pipeline)


def progress_rebuild(group_id) -> bool:
    """Recreate (or top up) the progress object from the database; True when the group is complete."""
    group = JobGroup.objects.get(id=group_id)
    snapshot = _snapshot(group)
    scripts = _scripts.bind()
    done = scripts.rebuild(keys=_keys(group_id), args=_rebuild_args(snapshot))
    logger.info("progress of group %s rebuilt from the database (%d finished items)", group_id, len(snapshot["finished"]))
    return bool(done)


def progress_item_started(*, group_id, provider: str) -> bool:
    """Mark the provider processing; True only for the start that moved it out of pending."""
    scripts = _scripts.bind()
    result = scripts.start(keys=[progress_key(group_id)], args=[provider, _ttl()])
    if result == -1:
        progress_rebuild(group_id)
        result = scripts.start(keys=[progress_key(group_id)], args=[provider, _ttl()])
    return result == 1


def progress_item_finished(
    *, group_id, item_id: int, provider: str, status: str, error: str = "", latency_ms: int | None = None
) -> ItemCounted:
    """Count one finished item, once, in the progress object and the cluster metrics (one script call).

    Call only after the item's row was updated in the database; `latency_ms` is an ok item's provider time.
    """
    scripts = _scripts.bind()
    le, seconds = metrics.meter_duration(latency_ms if status == JobItem.Status.OK else None)
    args = [str(item_id), provider, _OUTCOME_FIELD[status], _ttl(), error[:500], _done_ttl(), le, seconds,
            metrics.MINUTE_KEY_TTL_SECONDS]
    counted, provider_done, group_done, paused = scripts.finish(keys=[*_keys(group_id), PAUSED_KEY], args=args)
    paused_cache.load_names(paused)
    if counted == -1:
        # The object expired or Redis lost it: the rebuild reads the rows, ours included.
        group_done = progress_rebuild(group_id)
        return ItemCounted(counted=True, provider_done=True, group_done=group_done)
    return ItemCounted(counted=bool(counted), provider_done=bool(provider_done), group_done=bool(group_done))


def progress_flag(group_id, *, field: str, value: str) -> None:
    """Set a group-level field ("cancelled" or "err") on the live object, rebuilding it if missing."""
    scripts = _scripts.bind()
    if scripts.flag(keys=[progress_key(group_id)], args=[field, value, _ttl()]) == -1:
        progress_rebuild(group_id)


def _decode(raw: dict[bytes, bytes]) -> dict:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    providers = json.loads(fields["providers"])
    results = {p: int(fields.get(f"ok:{p}", 0)) for p in providers}
    failed = {p: int(fields.get(f"f:{p}", 0)) for p in providers}
    cancelled = sum(int(fields.get(f"c:{p}", 0)) for p in providers)
    progress = {
        "status": fields["status"],
        "updateId": int(fields["u"]),
        "providers": {p: fields.get(f"s:{p}", PENDING) for p in providers},
        "results": results,
        "failed": failed,
        "stats": {
            "totalPrompts": int(fields["tp"]),
            "expectedResponses": int(fields["exp"]),
            "samples": int(fields.get("sm", 1)),
            "actualResponses": sum(results.values()),
            "failedResponses": sum(failed.values()),
            "cancelledResponses": cancelled,
        },
    }
    error = _error_text(fields.get("err", ""), {p: fields[f"err:{p}"] for p in providers if f"err:{p}" in fields})
    if error:
        progress["error"] = error
    if fields.get("cancelled"):
        progress["cancelled"] = True
    return progress


def _error_text(group_error: str, provider_errors: dict[str, str]) -> str:
    """The object's "error": the run's own error, then "provider: error" per provider, joined by "; "."""
    parts = [group_error] if group_error else []
    parts += [f"{p}: {e}" for p, e in provider_errors.items()]
    return "; ".join(parts)


def progress_provider_errors(progress: dict) -> dict[str, str]:
    """Each provider's last error, read back from the object's "error" text (see `_error_text`)."""
    error, providers = progress.get("error", ""), list(progress["providers"])
    if not error or not providers:
        return {}
    names = "|".join(re.escape(p) for p in providers)
    found = {}
    for part in re.split(f"; (?=(?:{names}): )", error):
        match = re.match(f"^({names}): (.*)$", part, re.DOTALL)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def progress_from_database(group: JobGroup) -> dict:
    """The progress object computed from the rows alone (Redis missing, down, or group finished)."""
    providers = list(group.providers)
    counts = {p: {"ok": 0, "failed": 0, "cancelled": 0, "running": 0, "queued": 0, "all": 0} for p in providers}
    for row in JobItem.objects.filter(group=group).values("provider", "status").annotate(n=Count("id")):
        bucket = counts.setdefault(row["provider"], {"ok": 0, "failed": 0, "cancelled": 0, "running": 0, "queued": 0, "all": 0})
        bucket[row["status"]] = row["n"]
        bucket["all"] += row["n"]
    provider_rows = {row.provider: row for row in JobGroupProvider.objects.filter(group=group)}
    states, errors = {}, {}
    for p in providers:
        c = counts[p]
        row = provider_rows.get(p)
        states[p] = outcomes.provider_state(
            expected=c["all"], ok=c["ok"], failed=c["failed"], cancelled=c["cancelled"],
            started=bool(c["running"] or (row and row.status != PENDING)),
        )
        if row and row.error:
            errors[p] = row.error
    finished = sum(c["ok"] + c["failed"] + c["cancelled"] for c in counts.values())
    is_complete = finished >= group.expected_responses or group.status == JobGroup.Status.FAILED
    progress = {
        "status": COMPLETED if is_complete else PENDING,
        # Same formula the live object follows: one step per counted item and per state change.
        "updateId": finished
        + sum({PENDING: 0, PROCESSING: 1}.get(s, 2) for s in states.values())
        + (1 if is_complete else 0),
        "providers": states,
        "results": {p: counts[p]["ok"] for p in providers},
        "failed": {p: counts[p]["failed"] for p in providers},
        "stats": {
            "totalPrompts": group.total_prompts,
            "expectedResponses": group.expected_responses,
            "samples": group.samples,
            "actualResponses": sum(counts[p]["ok"] for p in providers),
            "failedResponses": sum(counts[p]["failed"] for p in providers),
            "cancelledResponses": sum(counts[p]["cancelled"] for p in providers),
        },
    }
    error = _error_text(group.error, errors)
    if error:
        progress["error"] = error
    if group.status == JobGroup.Status.CANCELLED:
        progress["cancelled"] = True
    return _with_run_at(progress, group)


def progress_get(group: JobGroup) -> dict:
    """The progress object for the status API: live from Redis, else from the database.

    A delayed run has no live object until it starts (it is read from the rows); every object
    of a delayed run says when it was (or is) to start, as `runAt`.
    """
    return _with_run_at(_progress_get(group), group)


def _with_run_at(progress: dict, group: JobGroup) -> dict:
    if group.run_at and "runAt" not in progress:
        progress = {**progress, "runAt": group.run_at.isoformat()}
    return progress


def _progress_get(group: JobGroup) -> dict:
    if group.status not in JobGroup.UNFINISHED and group.progress:
        return group.progress
    if group.status == JobGroup.Status.SCHEDULED:
        return progress_from_database(group)
    try:
        raw = redis_client().hgetall(progress_key(group.id))
        if raw:
            return _decode(raw)
        if group.status in JobGroup.UNFINISHED:
            progress_rebuild(group.id)
            raw = redis_client().hgetall(progress_key(group.id))
            if raw:
                return _decode(raw)
    except redis.RedisError as exc:
        logger.warning("progress of group %s read from the database: Redis unavailable (%s)", group.id, exc)
    return progress_from_database(group)


def progress_read_live(group_id) -> dict | None:
    """The live object as stored, or None when Redis holds none (for tests and the sweep)."""
    return progress_decode(redis_client().hgetall(progress_key(group_id)))


def progress_decode(raw: dict[bytes, bytes]) -> dict | None:
    """The progress object of a live object's raw `HGETALL` reply; None for an empty one (no object)."""
    return _decode(raw) if raw else None
