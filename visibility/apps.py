"""App configuration for visibility: connects it to the agent's signals (the agent never imports it)."""

from django.apps import AppConfig


class VisibilityConfig(AppConfig):
    name = "visibility"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agent.signals import answer_findings, consumer_started, job_group_closed
        from visibility import receivers

        answer_findings.connect(receivers.on_answer_findings, dispatch_uid="visibility.answer_findings")
        job_group_closed.connect(receivers.on_job_group_closed, dispatch_uid="visibility.job_group_closed")
        consumer_started.connect(receivers.on_consumer_started, dispatch_uid="visibility.consumer_started")
