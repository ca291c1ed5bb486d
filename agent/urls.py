"""Routes of the server-rendered pages (sign-in, workspaces, a run's live page)."""
from django.contrib.auth import views as auth_views
from django.urls import path

from agent import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="login.html", redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.workspace_list_page, name="workspace-list"),
    path("workspaces/<str:workspace_id>/", views.workspace_detail_page, name="workspace-detail"),
    path("workspaces/<str:workspace_id>/run/", views.workspace_run_page, name="workspace-run"),
    path("workspaces/<str:workspace_id>/prompts/", views.prompt_add_page, name="prompt-add"),
    path("prompts/<str:prompt_id>/active/", views.prompt_active_page, name="prompt-active"),
    path("runs/<str:group_id>/", views.run_detail_page, name="run-detail"),
    path("runs/<str:group_id>/cancel/", views.run_cancel_page, name="run-cancel"),
    path("runs/<str:group_id>/rerun/", views.run_rerun_page, name="run-rerun"),
]
