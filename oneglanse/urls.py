"""URL routes: the JSON API under /api/, Django admin under /admin/, the pages (agent/urls.py) at the root."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from agent.api import RunAnswersApi, RunCancelApi, RunDetailApi, RunRerunApi, RunStatusApi, WorkspaceRunsApi
from prompts.api import PromptDetailApi, WorkspacePromptsApi
from workspaces.api import WorkspaceDetailApi, WorkspaceListCreateApi

api = [
    path("api/auth/token/", obtain_auth_token, name="api-auth-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/workspaces/", WorkspaceListCreateApi.as_view(), name="api-workspaces"),
    path("api/workspaces/<str:workspace_id>/", WorkspaceDetailApi.as_view(), name="api-workspace"),
    path("api/workspaces/<str:workspace_id>/prompts/", WorkspacePromptsApi.as_view(), name="api-workspace-prompts"),
    path("api/workspaces/<str:workspace_id>/runs/", WorkspaceRunsApi.as_view(), name="api-workspace-runs"),
    path("api/prompts/<str:prompt_id>/", PromptDetailApi.as_view(), name="api-prompt"),
    path("api/runs/<str:group_id>/", RunDetailApi.as_view(), name="api-run"),
    path("api/runs/<str:group_id>/status/", RunStatusApi.as_view(), name="api-run-status"),
    path("api/runs/<str:group_id>/answers/", RunAnswersApi.as_view(), name="api-run-answers"),
    path("api/runs/<str:group_id>/rerun/", RunRerunApi.as_view(), name="api-run-rerun"),
    path("api/runs/<str:group_id>/cancel/", RunCancelApi.as_view(), name="api-run-cancel"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    *api,
    path("", include("agent.urls")),
]

# A database outage that escapes the views (in a middleware) is still a 503 with Retry-After.
handler500 = "oneglanse.database_outage.server_error"
