"""`manage.py run_group <workspace id or name> [--wait] [--priority P] [--at TIME]`: start a run from the shell.

It calls the same submit service as the API and, with --wait, reads the same progress object as
the status API, once a second. Exit codes: 0 every item answered, 1 an item failed or was
cancelled, 2 --timeout reached (the run keeps going), 3 nothing was submitted (no active prompts,
no providers, an unknown workspace), 130 Ctrl-C stopped following (the run keeps going).
Progress bars are drawn only on a terminal; piped or redirected output gets plain lines.
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from tqdm import tqdm

from agent import outcomes
from agent.api import run_paused_providers
from agent.models import JobGroup, Priority
from agent.progress import progress_get
from agent.selectors import job_item_counts_by_provider
from agent.services.submit import job_group_submit
from oneglanse.exceptions import DomainError
from oneglanse.provider_ids import provider_label
from workspaces.models import Workspace

EXIT_ANSWERED, EXIT_UNANSWERED, EXIT_TIMEOUT, EXIT_NOT_SUBMITTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
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


def run_url(group: JobGroup) -> str:
    """The run's page, on the address people open the pages at (AGENT_SITE_URL)."""
    return f"{settings.AGENT_SITE_URL}{reverse('run-detail', args=[group.id])}"


def provider_line(provider: str, state: str, expected: int, ok: int, failed: int) -> str:
    split = outcomes.provider_split(state=state, expected=expected, ok=ok, failed=failed)
    word = outcomes.outcome_label(outcomes.provider_outcome(state=state, split=split))
    counts = f"{split.ok} answered, {split.failed} failed, {split.cancelled} cancelled"
    return f"{provider_label(provider)}: {counts} of {expected} ({word})"


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
    verdict = outcomes.outcome_label(outcomes.run_outcome(progress, group.status))
    failing = [f"{p} {n}" for p, n in progress["failed"].items() if n]
    why = f" (failed per provider: {', '.join(failing)})" if failing else ""
    if progress.get("error"):
        why += f"; {progress['error']}"
    return f"Run {group.id} {verdict} in {seconds:.1f} s: {counts}{why}."


def _run_at(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time, e.g. 2026-01-05T06:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Start a run of a workspace's prompts (workspace by id or name). With --wait, show a progress bar per "
        "provider and exit 0 when every item was answered, 1 when any failed or was cancelled, "
        "2 on timeout; 3 when nothing was submitted; 130 when Ctrl-C stopped following (the run continues)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("workspace", help="workspace id or exact name")
        parser.add_argument("--wait", action="store_true", help="follow the run until it finishes")
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait with --wait (default 600)")
        parser.add_argument("--user", help="username recorded as who started the run")
        parser.add_argument("--priority", choices=Priority.values, default=Priority.NORMAL,
                            help="the run's priority on every provider queue (default normal)")
        parser.add_argument("--at", dest="run_at", type=_run_at,
                            help="start the run later, at this ISO 8601 time (UTC unless it has an offset); "
                                 "a time already passed runs now")

    def handle(self, *args, workspace: str, wait: bool, timeout: float, user: str | None, priority: str = Priority.NORMAL,
               run_at: datetime | None = None, **options) -> None:
        target = workspace_find(workspace)
        triggered_by = None
        if user:
            triggered_by = get_user_model().objects.filter(username=user).first()
            if triggered_by is None:
                raise CommandError(f"No user named {user!r}.", returncode=EXIT_NOT_SUBMITTED)
        try:
            submitted = job_group_submit(workspace=target, user=triggered_by, priority=priority, run_at=run_at)
        except DomainError as exc:
            raise CommandError(exc.detail, returncode=EXIT_NOT_SUBMITTED) from None
        group = submitted.job_group
        if group is None:
            # Nothing was submitted: a cron job must not read this as success.
            raise CommandError(
                f"Nothing to run: workspace {target.name!r} has no active prompts.", returncode=EXIT_NOT_SUBMITTED
            )
        self.stdout.write(
            f"Submitted run {group.id} for {target.name!r}: {group.total_prompts} prompts x "
            f"{len(group.providers)} providers = {group.expected_responses} provider calls, {group.priority} priority"
            + (f", starting at {group.run_at.isoformat()}." if group.run_at else ".")
            + f"\n{run_url(group)}"
        )
        if not wait:
            return
        code = self._follow(group, timeout=timeout)
        if code != EXIT_ANSWERED:
            sys.exit(code)

    def _follow(self, group: JobGroup, *, timeout: float) -> int:
        expected = {p: c["all"] for p, c in job_item_counts_by_provider(group).items()}
        stream = getattr(self.stderr, "_out", sys.stderr)
        on_terminal = self.stdout.isatty() and stream.isatty()
        bars = self._bars(group, expected, stream) if on_terminal else {}
        started = time.monotonic()
        last_lines: dict[str, str] = {}
        progress = progress_get(group)
        try:
            while True:
                group.refresh_from_db()
                progress = progress_get(group)
                paused = run_paused_providers(group, progress)
                for provider in group.providers:
                    state = progress["providers"].get(provider, "pending")
                    ok, failed = progress["results"].get(provider, 0), progress["failed"].get(provider, 0)
                    # A paused queue waits for an operator: say so rather than look stuck.
                    note = ", queue paused" if provider in paused else ""
                    if bars:
                        bar = bars[provider]
                        bar.n = outcomes.provider_bar_fill(state=state, expected=expected[provider], ok=ok, failed=failed)
                        bar.set_postfix_str(f"{ok} answered, {failed} failed{note}", refresh=False)
                        bar.refresh()
                        continue
                    # Not a terminal (a pipe, a log file, cron): a plain line whenever a provider moves.
                    line = provider_line(provider, state, expected[provider], ok, failed) + note
                    if last_lines.get(provider) != line:
                        last_lines[provider] = line
                        self.stdout.write(line)
                elapsed = time.monotonic() - started
                if progress["status"] == "completed" or elapsed >= timeout:
                    break
                time.sleep(min(POLL_SECONDS, max(0.0, timeout - elapsed)))
        except KeyboardInterrupt:
            for bar in bars.values():
                bar.close()
            bars = {}
            finished = outcomes.finished_count(progress["stats"])
            self.stdout.write(
                f"\nStopped following; the run continues ({finished} of {progress['stats']['expectedResponses']} "
                f"finished so far).\nRun {group.id}: {run_url(group)}"
            )
            return EXIT_INTERRUPTED
        finally:
            for bar in bars.values():
                bar.close()
        self.stdout.write(summary_line(group, progress, time.monotonic() - started))
        self.stdout.write(run_url(group))
        if progress["status"] != "completed":
            return EXIT_TIMEOUT
        stats = progress["stats"]
        return EXIT_ANSWERED if stats["actualResponses"] == stats["expectedResponses"] else EXIT_UNANSWERED

    def _bars(self, group: JobGroup, expected: dict[str, int], stream) -> dict:
        width = max(len(provider_label(p)) for p in group.providers)
        # tqdm rewrites its lines in place, so it gets the raw stream, not Django's line-ending wrapper.
        return {
            p: tqdm(total=expected[p], desc=provider_label(p).ljust(width), position=i, file=stream,
                    unit="item", leave=True, dynamic_ncols=True, mininterval=0)
            for i, p in enumerate(group.providers)
        }
