"""`manage.py run_group <workspace id or name> [--wait]`: start a run from the shell and follow it.

It calls the same submit service as the API and, with --wait, reads the same progress object as
the status API, once a second. Exit codes: 0 every item answered, 1 an item failed or was
cancelled, 2 --timeout reached (the run keeps going), 3 nothing could be submitted.
"""
from __future__ import annotations

import sys
import time
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from agent import outcomes
from agent.models import JobGroup
from agent.progress import progress_get
from agent.selectors import job_item_counts_by_provider
from agent.services.submit import job_group_submit
from oneglanse.exceptions import DomainError
from oneglanse.provider_ids import provider_label
from workspaces.models import Workspace

EXIT_ANSWERED, EXIT_UNANSWERED, EXIT_TIMEOUT, EXIT_NOT_SUBMITTED = 0, 1, 2, 3
POLL_SECONDS = 1.0


def workspace_find(ref: str) -> Workspace:
    """A workspace by id, else by exact name; an ambiguous name lists the candidates' ids."""
    try:
        by_id = Workspace.objects.filter(id=uuid.UUID(ref)).first()
    except ValueError:
        by_id = None
    if by_id is not None:
        return by_id
    named = list(Workspace.objects.filter(name=ref).order_by("created_at"))
    if len(named) == 1:
        return named[0]
    if named:
        raise CommandError(
            f"{len(named)} workspaces are named {ref!r}; give an id: {', '.join(str(w.id) for w in named)}.",
            returncode=EXIT_NOT_SUBMITTED,
        )
    raise CommandError(f"No workspace has the id or name {ref!r}.", returncode=EXIT_NOT_SUBMITTED)


def summary_line(group: JobGroup, progress: dict, seconds: float) -> str:
    stats = progress["stats"]
    counts = (
        f"{stats['actualResponses']} answered, {stats['failedResponses']} failed, "
        f"{stats['cancelledResponses']} cancelled of {stats['expectedResponses']}"
    )
    if progress["status"] != "completed":
        finished = outcomes.finished_count(stats)
        return (
            f"Run {group.id} timed out after {seconds:.0f} s with {finished}/{stats['expectedResponses']} finished "
            f"({counts}); it keeps running."
        )
    verdict = "cancelled" if progress.get("cancelled") else "completed"
    failing = [f"{p} {n}" for p, n in progress["failed"].items() if n]
    why = f" (failed per provider: {', '.join(failing)})" if failing else ""
    if progress.get("error"):
        why += f"; {progress['error']}"
    return f"Run {group.id} {verdict} in {seconds:.1f} s: {counts}{why}."


class Command(BaseCommand):
    help = (
        "Start a run of a workspace's prompts (workspace by id or name). With --wait, show a progress bar per "
        "provider and exit 0 when every item was answered, 1 when any failed or was cancelled, "
        "2 on timeout; 3 when nothing could be submitted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("workspace", help="workspace id or exact name")
        parser.add_argument("--wait", action="store_true", help="follow the run until it finishes")
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait with --wait (default 600)")
        parser.add_argument("--user", help="username recorded as who started the run")

    def handle(self, *args, workspace: str, wait: bool, timeout: float, user: str | None, **options) -> None:
        target = workspace_find(workspace)
        triggered_by = None
        if user:
            triggered_by = get_user_model().objects.filter(username=user).first()
            if triggered_by is None:
                raise CommandError(f"No user named {user!r}.", returncode=EXIT_NOT_SUBMITTED)
        try:
            submitted = job_group_submit(workspace=target, user=triggered_by)
        except DomainError as exc:
            raise CommandError(exc.detail, returncode=EXIT_NOT_SUBMITTED) from None
        group = submitted.job_group
        if group is None:
            self.stdout.write(f"Nothing to run: workspace {target.name!r} has no active prompts.")
            return
        self.stdout.write(
            f"Submitted run {group.id} for {target.name!r}: {group.total_prompts} prompts x "
            f"{len(group.providers)} providers = {group.expected_responses} items."
        )
        if not wait:
            return
        code = self._follow(group, timeout=timeout)
        if code != EXIT_ANSWERED:
            sys.exit(code)

    def _follow(self, group: JobGroup, *, timeout: float) -> int:
        expected = {p: c["all"] for p, c in job_item_counts_by_provider(group).items()}
        width = max(len(provider_label(p)) for p in group.providers)
        # tqdm rewrites its lines in place, so it gets the raw stream, not Django's line-ending wrapper.
        stream = getattr(self.stderr, "_out", sys.stderr)
        bars = {
            p: tqdm(total=expected[p], desc=provider_label(p).ljust(width), position=i, file=stream,
                    unit="item", leave=True, dynamic_ncols=True, mininterval=0)
            for i, p in enumerate(group.providers)
        }
        started = time.monotonic()
        try:
            while True:
                group.refresh_from_db()
                progress = progress_get(group)
                for provider, bar in bars.items():
                    state = progress["providers"].get(provider, "pending")
                    ok, failed = progress["results"].get(provider, 0), progress["failed"].get(provider, 0)
                    bar.n = outcomes.provider_bar_fill(state=state, expected=expected[provider], ok=ok, failed=failed)
                    bar.set_postfix_str(f"{state}, {ok} ok, {failed} failed", refresh=False)
                    bar.refresh()
                elapsed = time.monotonic() - started
                if progress["status"] == "completed" or elapsed >= timeout:
                    break
                time.sleep(min(POLL_SECONDS, max(0.0, timeout - elapsed)))
        finally:
            for bar in bars.values():
                bar.close()
        self.stdout.write(summary_line(group, progress, time.monotonic() - started))
        if progress["status"] != "completed":
            return EXIT_TIMEOUT
        stats = progress["stats"]
        return EXIT_ANSWERED if stats["actualResponses"] == stats["expectedResponses"] else EXIT_UNANSWERED
