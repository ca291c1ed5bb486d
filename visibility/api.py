"""Visibility API: a workspace's tracked brands, a run's visibility and a workspace's trend (JSON or CSV)."""

import orjson
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from agent.selectors import job_group_get_for_user
from oneglanse.provider_ids import PROVIDER_IDS
from visibility.api_csv import VisibilityCsvRenderer, csv_response, visibility_csv_rows
from visibility.cached_reads import cached_body, job_group_visibility_key, workspace_visibility_trend_key
from visibility.detection import ANALYSIS_VERSION
from visibility.models import ALL_PROVIDERS, BRAND_NAME_MAX_LENGTH, Brand
from visibility.selectors import (
    brand_get_for_user,
    brands_of_workspace,
    job_group_provider_sets,
    job_group_visibility,
    trend_filter_parse,
    workspace_visibility_points,
    workspace_visibility_trend,
)
from visibility.services.brands import MAX_ALIASES, MAX_DOMAINS, brand_create, brand_delete, brand_update
from workspaces.selectors import workspace_get_for_user


class BrandOutputSerializer(serializers.ModelSerializer):
    workspace = serializers.UUIDField(source="workspace_id")

    class Meta:
        model = Brand
        fields = ["id", "workspace", "name", "aliases", "domains", "is_own", "match_case", "created_at"]


class BrandInputSerializer(serializers.Serializer):
    # Blank strings pass here so the service can say which alias or domain is empty.
    name = serializers.CharField(max_length=BRAND_NAME_MAX_LENGTH, allow_blank=True, trim_whitespace=False)
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=BRAND_NAME_MAX_LENGTH, allow_blank=True, trim_whitespace=False),
        required=False,
        max_length=MAX_ALIASES,
    )
    domains = serializers.ListField(
        child=serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=False),
        required=False,
        max_length=MAX_DOMAINS,
    )
    is_own = serializers.BooleanField(required=False)
    match_case = serializers.BooleanField(required=False)


class VisibilityJsonRenderer(JSONRenderer):
    """DRF's compact JSON, encoded by orjson: a year's trend or a big run's prompts are megabytes of
    figures, which the standard library encodes ten times slower. Anything orjson does not know
    natively (dates included, so they read as everywhere else in the API) goes through DRF's encoder."""

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=JSONEncoder().default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def _with_reanalysis(body: dict) -> dict:
    """A brand write's answer says that stored answers are re-analysed shortly (by the consumers)."""
    return {**body, "reanalysis": "pending"}


class WorkspaceBrandsApi(ListAPIView):
    serializer_class = BrandOutputSerializer

    def get_queryset(self):
        workspace = workspace_get_for_user(user=self.request.user, workspace_id=self.kwargs["workspace_id"])
        return brands_of_workspace(workspace=workspace)

    @extend_schema(request=BrandInputSerializer, responses={201: BrandOutputSerializer})
    def post(self, request, workspace_id):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        data = BrandInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        brand = brand_create(workspace=workspace, **data.validated_data)
        return Response(_with_reanalysis(BrandOutputSerializer(brand).data), status=status.HTTP_201_CREATED)


class BrandDetailApi(APIView):
    @extend_schema(responses=BrandOutputSerializer)
    def get(self, request, brand_id):
        return Response(BrandOutputSerializer(brand_get_for_user(user=request.user, brand_id=brand_id)).data)

    @extend_schema(request=BrandInputSerializer(partial=True), responses=BrandOutputSerializer)
    def patch(self, request, brand_id):
        brand = brand_get_for_user(user=request.user, brand_id=brand_id)
        data = BrandInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        brand = brand_update(brand=brand, **data.validated_data)
        return Response(_with_reanalysis(BrandOutputSerializer(brand).data))

    @extend_schema(responses={204: None})
    def delete(self, request, brand_id):
        brand_delete(brand=brand_get_for_user(user=request.user, brand_id=brand_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _wants_csv(request) -> bool:
    return getattr(request, "accepted_renderer", None) is not None and request.accepted_renderer.format == "csv"


def _wants_json(request) -> bool:
    return isinstance(getattr(request, "accepted_renderer", None), VisibilityJsonRenderer)


def _json(body: dict) -> bytes:
    return VisibilityJsonRenderer().render(body)


def _json_response(body: bytes) -> HttpResponse:
    """An already encoded body (from the cache) as the JSON renderer would have answered it."""
    return HttpResponse(body, content_type=VisibilityJsonRenderer.media_type)


class RunVisibilityApi(APIView):
    """A run's visibility per brand, provider and prompt; `?format=csv` gives one row per provider × brand."""

    renderer_classes = [VisibilityJsonRenderer, BrowsableAPIRenderer, VisibilityCsvRenderer]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, group_id):
        group = job_group_get_for_user(user=request.user, group_id=group_id)
        if _wants_json(request):
            return _json_response(
                cached_body(job_group_visibility_key(group=group), lambda: _json(job_group_visibility(group=group)))
            )
        if not _wants_csv(request):
            return Response(job_group_visibility(group=group))
        brands = list(brands_of_workspace(workspace=group.workspace))
        total, per_provider = job_group_provider_sets(group=group)
        at = group.created_at.isoformat()
        rows = []
        for provider, counts in [(ALL_PROVIDERS, total), *per_provider.items()]:
            rows += visibility_csv_rows(
                run_id=str(group.id),
                at=at,
                provider=provider,
                analysis_version=ANALYSIS_VERSION,
                brands=brands,
                counts=counts,
            )
        return csv_response(rows, filename=f"oneglanse-{group.id}-visibility.csv")


class WorkspaceVisibilityApi(APIView):
    """A workspace's visibility trend: one point per finished run and provider (and "all"), oldest first."""

    renderer_classes = [VisibilityJsonRenderer, BrowsableAPIRenderer, VisibilityCsvRenderer]

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE),
            OpenApiParameter("to", OpenApiTypes.DATE),
            OpenApiParameter("provider", OpenApiTypes.STR, enum=[*PROVIDER_IDS, ALL_PROVIDERS]),
            OpenApiParameter("brand", OpenApiTypes.INT),
        ],
    )
    def get(self, request, workspace_id):
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        trend = trend_filter_parse(workspace=workspace, params=request.query_params)
        if _wants_json(request):
            return _json_response(
                cached_body(
                    workspace_visibility_trend_key(workspace=workspace, trend=trend),
                    lambda: _json(workspace_visibility_trend(workspace=workspace, trend=trend)),
                )
            )
        if not _wants_csv(request):
            return Response(workspace_visibility_trend(workspace=workspace, trend=trend))
        brands, points = workspace_visibility_points(workspace=workspace, trend=trend)
        rows = []
        for stat, counts in points:
            for row in visibility_csv_rows(
                run_id=str(stat.group_id),
                at=stat.at.isoformat(),
                provider=stat.provider,
                analysis_version=stat.analysis_version,
                brands=brands,
                counts=counts,
            ):
                if trend.brand_id is None or row[3] == trend.brand_id:
                    rows.append(row)
        return csv_response(rows, filename=f"oneglanse-{workspace.id}-visibility.csv")
