"""Workspace API: create, list, read and update the caller's workspaces."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from workspaces.members import membership_require_owner
from workspaces.models import Workspace
from workspaces.selectors import workspace_get_for_user, workspaces_of_user
from workspaces.services import WORKSPACE_NAME_MAX_LENGTH, workspace_create, workspace_update


class WorkspaceOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workspace
        fields = ["id", "name", "enabled_providers", "created_at"]


class WorkspaceInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=WORKSPACE_NAME_MAX_LENGTH, allow_blank=False, trim_whitespace=True)
    enabled_providers = serializers.ListField(child=serializers.CharField(max_length=32), allow_empty=True, max_length=20)


class WorkspaceListCreateApi(ListAPIView):
    serializer_class = WorkspaceOutputSerializer

    def get_queryset(self):
        return workspaces_of_user(user=self.request.user).order_by("name", "created_at")

    @extend_schema(request=WorkspaceInputSerializer, responses={201: WorkspaceOutputSerializer})
    def post(self, request):
        data = WorkspaceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = workspace_create(user=request.user, **data.validated_data)
        return Response(WorkspaceOutputSerializer(workspace).data, status=status.HTTP_201_CREATED)


class WorkspaceDetailApi(APIView):
    @extend_schema(responses=WorkspaceOutputSerializer)
    def get(self, request, workspace_id):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        return Response(WorkspaceOutputSerializer(workspace).data)

    @extend_schema(request=WorkspaceInputSerializer(partial=True), responses=WorkspaceOutputSerializer)
    def patch(self, request, workspace_id):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        membership_require_owner(user=request.user, workspace=workspace)
        data = WorkspaceInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        workspace = workspace_update(workspace=workspace, **data.validated_data)
        return Response(WorkspaceOutputSerializer(workspace).data)
