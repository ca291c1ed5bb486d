"""URL routes: the JSON API under /api/, Django admin under /admin/, the pages (agent/urls.py) at the root."""
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from agent.api import RunAnswersApi, RunCancelApi, RunDetailApi, RunRerunApi, RunStatusApi, WorkspaceRunsApi
from agent.api_metrics import metrics_view
from agent.api_queues import QueueListApi, QueuePauseApi, QueueResumeApi
from agent.api_schedules import ScheduleDetailApi, WorkspaceSchedulesApi
from oneglanse.api_token import ObtainTokenApi
from prompts.api import PromptDetailApi, WorkspacePromptsApi
from visibility.api import BrandDetailApi, RunVisibilityApi, WorkspaceBrandsApi, WorkspaceVisibilityApi
from workspaces.api import WorkspaceDetailApi, WorkspaceListCreateApi
from workspaces.api_members import WorkspaceMemberApi, WorkspaceMembersApi

api = [
    path("api/auth/token/", ObtainTokenApi.as_view(), name="api-auth-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/workspaces/", WorkspaceListCreateApi.as_view(), name="api-workspaces"),
    path("api/workspaces/<str:workspace_id>/", WorkspaceDetailApi.as_view(), name="api-workspace"),
    path("api/workspaces/<str:workspace_id>/members/", WorkspaceMembersApi.as_view(), name="api-workspace-members"),
    path("api/workspaces/<str:workspace_id>/members/<str:username>/", WorkspaceMemberApi.as_view(),
         name="api-workspace-member"),
    path("api/workspaces/<str:workspace_id>/prompts/", WorkspacePromptsApi.as_view(), name="api-workspace-prompts"),
    path("api/workspaces/<str:workspace_id>/runs/", WorkspaceRunsApi.as_view(), name="api-workspace-runs"),
    path("api/workspaces/<str:workspace_id>/brands/", WorkspaceBrandsApi.as_view(), name="api-workspace-brands"),
    path("api/workspaces/<str:workspace_id>/visibility/", WorkspaceVisibilityApi.as_view(), name="api-workspace-visibility"),
    path("api/brands/<str:brand_id>/", BrandDetailApi.as_view(), name="api-brand"),
    path("api/runs/<str:group_id>/visibility/", RunVisibilityApi.as_view(), name="api-run-visibility"),
    path("api/workspaces/<str:workspace_id>/schedules/", WorkspaceSchedulesApi.as_view(), name="api-workspace-schedules"),
    path("api/schedules/<str:schedule_id>/", ScheduleDetailApi.as_view(), name="api-schedule"),
    path("api/prompts/<str:prompt_id>/", PromptDetailApi.as_view(), name="api-prompt"),
    path("api/runs/<str:group_id>/", RunDetailApi.as_view(), name="api-run"),
    path("api/runs/<str:group_id>/status/", RunStatusApi.as_view(), name="api-run-status"),
    path("api/runs/<str:group_id>/answers/", RunAnswersApi.as_view(), name="api-run-answers"),
    path("api/runs/<str:group_id>/rerun/", RunRerunApi.as_view(), name="api-run-rerun"),
    path("api/runs/<str:group_id>/cancel/", RunCancelApi.as_view(), name="api-run-cancel"),
    path("api/queues/", QueueListApi.as_view(), name="api-queues"),
    path("api/queues/<str:provider_id>/pause/", QueuePauseApi.as_view(), name="api-queue-pause"),
    path("api/queues/<str:provider_id>/resume/", QueueResumeApi.as_view(), name="api-queue-resume"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    *api,
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", RedirectView.as_view(url=static("agent/favicon.svg"), permanent=True), name="favicon"),
    path("", include("workspaces.urls")),  # before agent.urls: "workspaces/new/" is not a workspace id
    path("", include("agent.urls")),
    path("", include("visibility.urls")),
]

# A database outage that escapes the views (in a middleware) is still a 503 with Retry-After.
handler500 = "oneglanse.database_outage.server_error"
