"""App configuration for workspaces."""
from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from workspaces.access import membership_signals_connect

        membership_signals_connect()
