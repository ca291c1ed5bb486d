"""Routes of the workspace settings and members pages."""
from django.urls import path

from workspaces import views

urlpatterns = [
    path("workspaces/new/", views.workspace_create_page, name="workspace-create"),
    path("workspaces/<str:workspace_id>/settings/", views.workspace_edit_page, name="workspace-edit"),
    path("workspaces/<str:workspace_id>/members/", views.workspace_members_page, name="workspace-members"),
    path("workspaces/<str:workspace_id>/members/<str:username>/", views.workspace_member_page, name="workspace-member"),
]
