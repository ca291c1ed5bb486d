"""Prototypes of the core changes BENCHMARKS.md recommends that have not landed, applied as patches inside bench processes only.

`python bench/run.py --proposals` loads them in the agent consumers and the web server (through
bench/proposals_settings.py), so each recommendation comes with a measured gain instead of a
guess. The shipped code is not touched; once a change lands in core, delete its patch here.
"""
from __future__ import annotations

import uuid

from django.apps import AppConfig

MEMBERSHIP_CACHE_SECONDS = 30

PROPOSALS = {
    "P5": "agent.api.RunStatusApi: no SQL beyond the token lookup: the group's workspace and, once it is "
          "finished, its final progress cached for good (neither changes), the caller's workspace ids for 30 s; "
          "a live group's progress from one Redis read",
}


def proposals_apply() -> None:
    from django.core.cache import cache
    from rest_framework.response import Response

    import agent.api
    import agent.progress
    from agent.models import JobGroup
    from oneglanse.exceptions import NotFound
    from workspaces.models import Membership

    # P5: no SQL beyond the token. A group's workspace never changes, nor does a completed or failed
    # group's final progress (both cached for good, per process); the caller's workspace ids are cached
    # MEMBERSHIP_CACHE_SECONDS, so removing a member takes that long to reach this endpoint.
    # Anything else (unknown, cancelled, Redis without the object) takes the shipped path.
    status_get = agent.api.RunStatusApi.get

    def live_status_get(self, request, group_id):
        try:
            uuid.UUID(str(group_id))
        except ValueError:
            return status_get(self, request, group_id)
        workspace_id = cache.get(f"bench:group-workspace:{group_id}")
        if workspace_id is None:
            workspace_id = JobGroup.objects.filter(id=group_id).values_list("workspace_id", flat=True).first()
            if workspace_id is None:
                return status_get(self, request, group_id)
            cache.set(f"bench:group-workspace:{group_id}", workspace_id, None)
        allowed = cache.get(f"bench:user-workspaces:{request.user.id}")
        if allowed is None:
            allowed = set(Membership.objects.filter(user_id=request.user.id).values_list("workspace_id", flat=True))
            cache.set(f"bench:user-workspaces:{request.user.id}", allowed, MEMBERSHIP_CACHE_SECONDS)
        if workspace_id not in allowed:
            raise NotFound("Run not found.")
        progress = cache.get(f"bench:group-final:{group_id}")  # a finished group's progress never changes
        if progress is None:
            raw = agent.progress.redis_client().hgetall(agent.progress.progress_key(group_id))
            if raw and raw.get(b"status") == b"pending":
                progress = agent.progress._decode(raw)
            else:
                state, final = JobGroup.objects.filter(id=group_id).values_list("status", "progress").first() or (None, None)
                if state not in (JobGroup.Status.COMPLETED, JobGroup.Status.FAILED) or not final:
                    return status_get(self, request, group_id)  # cancelled groups may still change
                progress = final
                cache.set(f"bench:group-final:{group_id}", final, None)
        etag = agent.api._status_etag(group_id, progress["updateId"])
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response({"status": progress["status"], "response": progress},
                        headers={"ETag": etag, "Cache-Control": "private, no-cache"})

    agent.api.RunStatusApi.get = live_status_get


class ProposalsConfig(AppConfig):
    name = "bench"
    label = "bench_proposals"

    def ready(self) -> None:
        proposals_apply()
