"""Routes of the server-rendered pages (sign-in, workspaces, a run's live page)."""
from django.contrib.auth import views as auth_views
from django.urls import path

from agent import ops, views, views_schedules

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="login.html", redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.workspace_list_page, name="workspace-list"),
    path("workspaces/<str:workspace_id>/", views.workspace_detail_page, name="workspace-detail"),
    path("workspaces/<str:workspace_id>/run/", views.workspace_run_page, name="workspace-run"),
    path("workspaces/<str:workspace_id>/prompts/", views.prompt_add_page, name="prompt-add"),
    path("prompts/<str:prompt_id>/active/", views.prompt_active_page, name="prompt-active"),
    path("workspaces/<str:workspace_id>/schedules/", views_schedules.schedule_add_page, name="schedule-add"),
    path("schedules/<str:schedule_id>/active/", views_schedules.schedule_active_page, name="schedule-active"),
    path("schedules/<str:schedule_id>/delete/", views_schedules.schedule_delete_page, name="schedule-delete"),
    path("runs/<str:group_id>/", views.run_detail_page, name="run-detail"),
    path("runs/<str:group_id>/cancel/", views.run_cancel_page, name="run-cancel"),
    path("runs/<str:group_id>/rerun/", views.run_rerun_page, name="run-rerun"),
    path("ops/", ops.ops_page, name="ops"),
    path("ops/activity/", ops.ops_activity, name="ops-activity"),
    path("ops/queues/<str:provider_id>/pause/", ops.ops_queue_pause_page, name="ops-queue-pause"),
    path("ops/queues/<str:provider_id>/resume/", ops.ops_queue_resume_page, name="ops-queue-resume"),
]
