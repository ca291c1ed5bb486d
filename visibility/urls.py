"""Routes of the visibility pages (the dashboard, a cell's answers, the brand and samples forms)."""

from django.urls import path

from visibility import views

urlpatterns = [
    path("workspaces/<str:workspace_id>/visibility/", views.dashboard_page, name="visibility-dashboard"),
    path("workspaces/<str:workspace_id>/brands/", views.brand_add_page, name="brand-add"),
    path("workspaces/<str:workspace_id>/samples/", views.samples_page, name="workspace-samples"),
    path("brands/<str:brand_id>/edit/", views.brand_edit_page, name="brand-edit"),
    path("brands/<str:brand_id>/delete/", views.brand_delete_page, name="brand-delete"),
    path("runs/<str:group_id>/visibility/answers/", views.cell_answers_page, name="visibility-answers"),
]
