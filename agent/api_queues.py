"""Queue operations API for staff: every provider queue at a glance, pause and resume (others get 404)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from agent.queue_ops import queue_overview_get, queue_overview_list, queue_pause, queue_resume


class StaffOnly(BasePermission):
    """Staff pass; anyone else is told nothing exists here (404, not 403)."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated and request.user.is_staff):
            raise NotFound()
        return True


LAST_HOUR = inline_serializer("QueueLastHour", {
    "ok": serializers.IntegerField(), "failed": serializers.IntegerField(),
    "p50_ms": serializers.IntegerField(allow_null=True), "p95_ms": serializers.IntegerField(allow_null=True),
})
QUEUE = inline_serializer("Queue", {
    "provider": serializers.CharField(), "queue": serializers.CharField(), "paused": serializers.BooleanField(),
    "paused_by": serializers.CharField(allow_null=True), "paused_at": serializers.DateTimeField(allow_null=True),
    "waiting": serializers.IntegerField(), "scheduled": serializers.IntegerField(), "running": serializers.IntegerField(),
    "consumers": serializers.IntegerField(), "workers": serializers.IntegerField(),
    "hosts": serializers.ListField(child=serializers.CharField()), "last_hour": LAST_HOUR,
})
QUEUE_LIST = inline_serializer("QueueList", {
    "count": serializers.IntegerField(), "next": serializers.CharField(allow_null=True),
    "previous": serializers.CharField(allow_null=True), "results": serializers.ListField(child=QUEUE),
})


class QueueListApi(APIView):
    permission_classes = [StaffOnly]

    @extend_schema(responses={200: QUEUE_LIST})
    def get(self, request):
        results = [overview.as_dict() for overview in queue_overview_list()]
        # One page always holds every provider; the list keeps the API's paginated shape.
        return Response({"count": len(results), "next": None, "previous": None, "results": results})


class QueuePauseApi(APIView):
    permission_classes = [StaffOnly]

    @extend_schema(request=None, responses={200: QUEUE})
    def post(self, request, provider_id: str):
        queue_pause(provider_id=provider_id, user=request.user)
        return Response(queue_overview_get(provider_id).as_dict())


class QueueResumeApi(APIView):
    permission_classes = [StaffOnly]

    @extend_schema(request=None, responses={200: QUEUE})
    def post(self, request, provider_id: str):
        queue_resume(provider_id=provider_id, user=request.user)
        return Response(queue_overview_get(provider_id).as_dict())
