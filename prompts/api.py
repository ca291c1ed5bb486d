"""Prompt API: add and list a workspace's prompts, switch one on or off."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from prompts.models import PROMPT_TEXT_MAX_LENGTH, Prompt
from prompts.selectors import prompt_get_for_user
from prompts.services import prompt_create, prompt_update
from workspaces.selectors import workspace_get_for_user


class PromptOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prompt
        fields = ["id", "workspace", "text", "is_active", "created_at"]


class PromptCreateSerializer(serializers.Serializer):
    text = serializers.CharField(min_length=1, max_length=PROMPT_TEXT_MAX_LENGTH, trim_whitespace=True)


class PromptUpdateSerializer(serializers.Serializer):
    is_active = serializers.BooleanField()


class WorkspacePromptsApi(ListAPIView):
    serializer_class = PromptOutputSerializer

    def get_queryset(self):
        workspace = workspace_get_for_user(user=self.request.user, workspace_id=self.kwargs["workspace_id"])
        return Prompt.objects.filter(workspace=workspace).order_by("created_at", "id")

    @extend_schema(request=PromptCreateSerializer, responses={201: PromptOutputSerializer})
    def post(self, request, workspace_id):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        data = PromptCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        prompt = prompt_create(workspace=workspace, text=data.validated_data["text"])
        return Response(PromptOutputSerializer(prompt).data, status=status.HTTP_201_CREATED)


class PromptDetailApi(APIView):
    @extend_schema(responses=PromptOutputSerializer)
    def get(self, request, prompt_id):
        return Response(PromptOutputSerializer(prompt_get_for_user(user=request.user, prompt_id=prompt_id)).data)

    @extend_schema(request=PromptUpdateSerializer, responses=PromptOutputSerializer)
    def patch(self, request, prompt_id):
        prompt = prompt_get_for_user(user=request.user, prompt_id=prompt_id)
        data = PromptUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        prompt = prompt_update(prompt=prompt, is_active=data.validated_data["is_active"])
        return Response(PromptOutputSerializer(prompt).data)
