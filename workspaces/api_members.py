"""Members API: who belongs to a workspace and with which role; only owners change it."""
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from workspaces.members import (
    membership_add,
    membership_change_role,
    membership_get,
    membership_remove,
    memberships_of_workspace,
)
from workspaces.models import Membership
from workspaces.selectors import workspace_get_for_user

ERROR = inline_serializer("MemberError", {"detail": serializers.CharField()})


class MemberOutputSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class WorkspaceMembersApi(ListAPIView):
    serializer_class = MemberOutputSerializer

    def get_queryset(self):
        workspace = workspace_get_for_user(user=self.request.user, workspace_id=self.kwargs["workspace_id"])
        return memberships_of_workspace(workspace=workspace)

    @extend_schema(request=MemberAddSerializer, responses={201: MemberOutputSerializer, 403: ERROR, 404: ERROR, 409: ERROR})
    def post(self, request, workspace_id):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        data = MemberAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_add(by=request.user, workspace=workspace, **data.validated_data)
        return Response(MemberOutputSerializer(membership).data, status=status.HTTP_201_CREATED)


class WorkspaceMemberApi(APIView):
    @extend_schema(responses={200: MemberOutputSerializer, 404: ERROR})
    def get(self, request, workspace_id, username):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        return Response(MemberOutputSerializer(membership_get(workspace=workspace, username=username)).data)

    @extend_schema(request=MemberRoleSerializer, responses={200: MemberOutputSerializer, 403: ERROR, 404: ERROR, 409: ERROR})
    def patch(self, request, workspace_id, username):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        data = MemberRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_change_role(by=request.user, workspace=workspace, username=username, **data.validated_data)
        return Response(MemberOutputSerializer(membership).data)

    @extend_schema(request=None, responses={204: None, 403: ERROR, 404: ERROR, 409: ERROR})
    def delete(self, request, workspace_id, username):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        membership_remove(by=request.user, workspace=workspace, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)
