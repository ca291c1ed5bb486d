"""Schedules API: a workspace's schedules (owners change them, members read them)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from agent.cron import CronInvalid, cron_validate, timezone_validate
from agent.models import JobGroup, Schedule
from agent.selectors import schedule_get_for_user, schedules_of_workspace
from agent.services.schedules import schedule_create, schedule_delete, schedule_update
from workspaces.selectors import workspace_get_for_user


class ScheduleRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobGroup
        fields = ["id", "status", "scheduled_for", "created_at", "late"]


class ScheduleOutputSerializer(serializers.ModelSerializer):
    workspace = serializers.UUIDField(source="workspace_id")
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Schedule
        fields = ["id", "workspace", "cron", "timezone", "priority", "is_active", "created_by", "next_run_at",
                  "last_run_at", "last_skip_reason", "last_skip_at", "created_at"]


class ScheduleDetailSerializer(ScheduleOutputSerializer):
    recent_runs = serializers.SerializerMethodField()

    class Meta(ScheduleOutputSerializer.Meta):
        fields = [*ScheduleOutputSerializer.Meta.fields, "recent_runs"]

    def get_recent_runs(self, schedule: Schedule) -> list[dict]:
        return ScheduleRunSerializer(schedule.runs.order_by("-created_at")[:10], many=True).data


def _cron(value: str) -> str:
    try:
        return cron_validate(value)
    except CronInvalid as exc:
        raise serializers.ValidationError(str(exc)) from None


def _timezone(value: str) -> str:
    try:
        timezone_validate(value)
    except CronInvalid as exc:
        raise serializers.ValidationError(str(exc)) from None
    return value.strip()


class ScheduleInputSerializer(serializers.Serializer):
    cron = serializers.CharField(max_length=100, validators=[_cron])
    timezone = serializers.CharField(max_length=64, default="UTC", validators=[_timezone])
    priority = serializers.ChoiceField(choices=JobGroup.Priority.choices, default=JobGroup.Priority.LOW)
    is_active = serializers.BooleanField(default=True)


class WorkspaceSchedulesApi(ListAPIView):
    serializer_class = ScheduleOutputSerializer

    def get_queryset(self):
        workspace = workspace_get_for_user(user=self.request.user, workspace_id=self.kwargs["workspace_id"])
        return schedules_of_workspace(workspace=workspace)

    @extend_schema(request=ScheduleInputSerializer, responses={201: ScheduleDetailSerializer})
    def post(self, request, workspace_id):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        data = ScheduleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = schedule_create(workspace=workspace, user=request.user, **data.validated_data)
        return Response(ScheduleDetailSerializer(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetailApi(APIView):
    @extend_schema(responses={200: ScheduleDetailSerializer})
    def get(self, request, schedule_id):
        return Response(ScheduleDetailSerializer(schedule_get_for_user(user=request.user, schedule_id=schedule_id)).data)

    @extend_schema(request=ScheduleInputSerializer(partial=True), responses={200: ScheduleDetailSerializer})
    def patch(self, request, schedule_id):
        schedule = schedule_get_for_user(user=request.user, schedule_id=schedule_id)
        data = ScheduleInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        schedule = schedule_update(schedule=schedule, user=request.user, **data.validated_data)
        return Response(ScheduleDetailSerializer(schedule).data)

    @extend_schema(responses={204: None})
    def delete(self, request, schedule_id):
        schedule_delete(schedule=schedule_get_for_user(user=request.user, schedule_id=schedule_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
