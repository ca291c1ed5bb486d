"""Run API (`JobGroup` in code): submit and list runs, follow their progress, read their answers."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from agent.api_csv import AnswersCsvRenderer
from agent.models import JobGroup, JobGroupProvider, JobItem
from agent.progress import progress_get, progress_update_id
from agent.queue_ops import queues_paused_cached
from agent.selectors import job_group_get_for_user, job_groups_of_workspace, job_items_of_group
from agent.services.closing import job_group_cancel
from agent.services.submit import job_group_rerun, job_group_submit
from agent.throttles import RunSubmitThrottle
from oneglanse.provider_ids import PROVIDER_IDS
from workspaces.selectors import workspace_get_for_user


class JobGroupProviderSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobGroupProvider
        fields = ["provider", "status", "error", "started_at", "finished_at"]


class JobGroupListSerializer(serializers.ModelSerializer):
    workspace = serializers.UUIDField(source="workspace_id")
    triggered_by = serializers.CharField(source="triggered_by.username", default=None)

    class Meta:
        model = JobGroup
        fields = [
            "id", "workspace", "status", "providers", "total_prompts", "expected_responses", "error",
            "rerun_of", "triggered_by", "trigger", "priority", "run_at", "schedule", "scheduled_for", "late",
            "created_at", "finished_at",
        ]



class RunSubmitInputSerializer(serializers.Serializer):
    """The submit body: optional; the defaults are priority "normal", run now."""

    priority = serializers.ChoiceField(choices=JobGroup.Priority.choices, default=JobGroup.Priority.NORMAL)
    run_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                       help_text="ISO 8601; a time already passed runs now.")


class AnswerSerializer(serializers.ModelSerializer):
    prompt = serializers.IntegerField(source="prompt_id")

    class Meta:
        model = JobItem
        fields = [
            "id", "provider", "prompt", "prompt_text", "status", "text", "sources", "usage", "latency_ms",
            "attempts", "error", "backend", "model",
        ]


class SubmittedSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["queued", "scheduled", "empty"])
    jobGroupId = serializers.UUIDField(required=False)
    runAt = serializers.DateTimeField(required=False, help_text="Only for a delayed run.")


class ProgressSerializer(serializers.Serializer):
    """The progress object (DESIGN.md contract), documented for the schema."""

    status = serializers.ChoiceField(choices=["pending", "completed"])
    updateId = serializers.IntegerField()
    providers = serializers.DictField(child=serializers.ChoiceField(choices=["pending", "processing", "completed", "failed"]))
    results = serializers.DictField(child=serializers.IntegerField())
    failed = serializers.DictField(child=serializers.IntegerField())
    stats = inline_serializer("ProgressStats", {
        "totalPrompts": serializers.IntegerField(),
        "expectedResponses": serializers.IntegerField(),
        "actualResponses": serializers.IntegerField(),
        "failedResponses": serializers.IntegerField(),
        "cancelledResponses": serializers.IntegerField(),
    })
    error = serializers.CharField(required=False)
    cancelled = serializers.BooleanField(required=False)


class RunStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "completed"])
    response = ProgressSerializer()
    paused_providers = serializers.ListField(child=serializers.CharField(), help_text=(
        "Providers of this run whose queue an operator paused while the run still waits on them."))


def run_paused_providers(group: JobGroup, progress: dict) -> list[str]:
    """The run's unfinished providers whose queue is paused (a view at most a few seconds old)."""
    if progress["status"] == "completed":
        return []
    paused = queues_paused_cached()
    return [p for p, state in progress["providers"].items() if p in paused and state in ("pending", "processing")]


class RunDetailSerializer(JobGroupListSerializer):
    workspace_name = serializers.CharField(source="workspace.name")
    group_providers = JobGroupProviderSerializer(many=True)

    class Meta(JobGroupListSerializer.Meta):
        fields = [*JobGroupListSerializer.Meta.fields, "workspace_name", "group_providers"]


class RunCancelledSerializer(serializers.Serializer):
    status = serializers.CharField()
    jobGroupId = serializers.UUIDField()
    cancelled_items = serializers.IntegerField()
    running_items = serializers.IntegerField()


ERROR = inline_serializer("Error", {"detail": serializers.CharField()})


class WorkspaceRunsApi(ListAPIView):
    serializer_class = JobGroupListSerializer
    throttle_classes = [RunSubmitThrottle]

    def get_queryset(self):
        workspace = workspace_get_for_user(user=self.request.user, workspace_id=self.kwargs["workspace_id"])
        return job_groups_of_workspace(workspace=workspace)

    @extend_schema(
        request=RunSubmitInputSerializer,
        responses={202: SubmittedSerializer, 200: SubmittedSerializer, 400: ERROR, 404: ERROR, 429: ERROR, 503: ERROR},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                                     description="The same key from the same user within 24 h returns the same run (200).")],
    )
    def post(self, request, workspace_id):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        body = RunSubmitInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        submitted = job_group_submit(
            workspace=workspace, user=request.user, idempotency_key=request.headers.get("Idempotency-Key", "").strip(),
            **body.validated_data,
        )
        code = status.HTTP_202_ACCEPTED if submitted.job_group and not submitted.replayed else status.HTTP_200_OK
        return Response(submitted.as_response(), status=code)


class RunStatusApi(APIView):
    @extend_schema(responses={200: RunStatusSerializer, 404: ERROR})
    def get(self, request, group_id):
        group = job_group_get_for_user(user=request.user, group_id=group_id)
        # Pollers send back the ETag they got; an unchanged updateId costs one Redis read and no body.
        # A pause changes the answer without changing updateId, so the tag names the paused queues too.
        seen = request.headers.get("If-None-Match")
        if seen and seen == _status_etag(group.id, progress_update_id(group), sorted(queues_paused_cached())):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": seen})
        progress = progress_get(group)
        return Response(
            {"status": progress["status"], "response": progress, "paused_providers": run_paused_providers(group, progress)},
            headers={"ETag": _status_etag(group.id, progress["updateId"], sorted(queues_paused_cached())),
                     "Cache-Control": "private, no-cache"},
        )


def _status_etag(group_id, update_id: int | None, paused: list[str] = ()) -> str:
    return f'"{group_id}-{update_id}{"-" + ".".join(paused) if paused else ""}"' if update_id is not None else ""


class RunDetailApi(APIView):
    @extend_schema(responses={200: RunDetailSerializer, 404: ERROR})
    def get(self, request, group_id):
        group = job_group_get_for_user(user=request.user, group_id=group_id)
        body = RunDetailSerializer(group).data
        body["progress"] = progress_get(group)
        return Response(body)


class RunRerunInputSerializer(serializers.Serializer):
    only_failed = serializers.BooleanField(default=False)


class RunRerunApi(APIView):
    throttle_classes = [RunSubmitThrottle]

    @extend_schema(request=RunRerunInputSerializer, responses={202: SubmittedSerializer, 200: SubmittedSerializer, 404: ERROR})
    def post(self, request, group_id):
        group = job_group_get_for_user(user=request.user, group_id=group_id)
        data = RunRerunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        submitted = job_group_rerun(group=group, user=request.user, only_failed=data.validated_data["only_failed"])
        code = status.HTTP_202_ACCEPTED if submitted.job_group else status.HTTP_200_OK
        return Response(submitted.as_response(), status=code)


class RunCancelApi(APIView):
    @extend_schema(request=None, responses={200: RunCancelledSerializer, 404: ERROR, 409: ERROR})
    def post(self, request, group_id):
        group = job_group_get_for_user(user=request.user, group_id=group_id)
        cancelled = job_group_cancel(group=group)
        return Response({
            "status": "cancelled",
            "jobGroupId": str(cancelled.job_group.id),
            "cancelled_items": cancelled.cancelled_items,
            "running_items": cancelled.running_items,
        })


class RunAnswersApi(ListAPIView):
    """A group's answers, paginated JSON; `?format=csv` exports every answer for spreadsheets."""

    serializer_class = AnswerSerializer
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, AnswersCsvRenderer]

    def paginate_queryset(self, queryset):
        if getattr(self.request, "accepted_renderer", None) and self.request.accepted_renderer.format == "csv":
            return None  # an export is the whole group, streamed row by row
        return super().paginate_queryset(queryset)

    @extend_schema(parameters=[
        OpenApiParameter("provider", OpenApiTypes.STR, enum=list(PROVIDER_IDS)),
        OpenApiParameter("status", OpenApiTypes.STR, enum=JobItem.Status.values),
        OpenApiParameter("page_size", OpenApiTypes.INT, description="up to 1000"),
    ])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            group = job_group_get_for_user(user=request.user, group_id=kwargs["group_id"])
            return AnswersCsvRenderer.streaming_response(group=group, items=self.get_queryset())
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        group = job_group_get_for_user(user=self.request.user, group_id=self.kwargs["group_id"])
        return job_items_of_group(
            group=group, provider=self.request.query_params.get("provider"), status=self.request.query_params.get("status")
        )
