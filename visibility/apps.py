"""App configuration for visibility."""

from django.apps import AppConfig


class VisibilityConfig(AppConfig):
    name = "visibility"
    default_auto_field = "django.db.models.BigAutoField"
