"""`manage.py queue pause|resume|status [provider]`: steer the provider queues from a shell.

It calls the same services as the API, the ops page and the admin action.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agent.queue_ops import QueueOverview, queue_overview_list, queue_pause, queue_resume
from oneglanse.exceptions import DomainError
from oneglanse.provider_ids import PROVIDER_IDS


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value} ms"


def status_line(o: QueueOverview) -> str:
    state = f"paused by {o.paused_by or 'someone'}" if o.paused else "running"
    return (
        f"{o.provider:<11} {state:<22} waiting {o.waiting:>6}  scheduled {o.scheduled:>5}  running {o.running:>4}  "
        f"consumers {o.consumers} ({o.workers} workers)  last hour: {o.last_hour.ok} ok, {o.last_hour.failed} failed, "
        f"p50 {_ms(o.last_hour.p50_ms)}, p95 {_ms(o.last_hour.p95_ms)}"
    )


class Command(BaseCommand):
    help = (
        "Pause, resume or show the provider queues. While a queue is paused no item of that provider "
        "starts on any host (running ones finish); runs still submit and wait on the queue."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["pause", "resume", "status"])
        parser.add_argument("provider", nargs="?", help=f"one of {', '.join(PROVIDER_IDS)} (status: all when omitted)")
        parser.add_argument("--user", help="username recorded as who paused the queue")

    def handle(self, *args, action: str, provider: str | None, user: str | None, **options) -> None:
        if provider is not None and provider not in PROVIDER_IDS:
            raise CommandError(f"Unknown provider {provider!r}; the queues are: {', '.join(PROVIDER_IDS)}.")
        if action != "status" and provider is None:
            raise CommandError(f"Say which queue to {action}: one of {', '.join(PROVIDER_IDS)}.")
        by = None
        if user:
            by = get_user_model().objects.filter(username=user).first()
            if by is None:
                raise CommandError(f"No user named {user!r}.")
        try:
            if action == "pause":
                queue_pause(provider_id=provider, user=by)
                self.stdout.write(f"Paused {provider}: no new item of it starts on any host; running ones finish.")
            elif action == "resume":
                queue_resume(provider_id=provider, user=by)
                self.stdout.write(f"Resumed {provider}: its consumers take items again.")
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        for overview in queue_overview_list():
            if provider is None or overview.provider == provider:
                self.stdout.write(status_line(overview))
