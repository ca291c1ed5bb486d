"""How runs are shown, shared by the pages, the admin and the CLI: labels, bars, outcomes, problems."""
from __future__ import annotations

from dataclasses import dataclass

from agent import outcomes
from agent.models import JobGroup
from agent.progress import progress_provider_errors
from agent.selectors import job_item_last_error
from oneglanse.provider_ids import provider_label

# A mark per provider state, so the state reads without colour (admin list, CLI).
STATE_MARK = {"completed": "✓", "failed": "✗", "processing": "…", "pending": "·"}


@dataclass(frozen=True)
class Bar:
    """A bar split into answered / failed / cancelled, with the words that say the same without colour."""

    expected: int
    ok: int
    failed: int
    cancelled: int
    outcome: str

    @property
    def finished(self) -> int:
        return self.ok + self.failed + self.cancelled

    @property
    def percent(self) -> int:
        return outcomes.percent(self.finished, self.expected)

    @property
    def widths(self) -> dict[str, int]:
        return outcomes.bar_widths(expected=self.expected, ok=self.ok, failed=self.failed, cancelled=self.cancelled)

    @property
    def outcome_label(self) -> str:
        return outcomes.outcome_label(self.outcome)

    @property
    def text(self) -> str:
        """"3 answered · 1 failed · 0 cancelled of 5" (the page script writes the same)."""
        return f"{self.ok} answered · {self.failed} failed · {self.cancelled} cancelled of {self.expected}"


@dataclass(frozen=True)
class ProviderProgress(Bar):
    """One provider's bar; `state` is the progress object's provider state."""

    provider: str = ""
    label: str = ""
    state: str = ""
    error: str = ""


def provider_progress(progress: dict, expected_by_provider: dict[str, int], errors: dict[str, str]) -> list[ProviderProgress]:
    """Per-provider bars from the progress object (contract)."""
    rows = []
    for provider, state in progress["providers"].items():
        split = outcomes.provider_split(
            state=state, expected=expected_by_provider.get(provider, 0),
            ok=progress["results"].get(provider, 0), failed=progress["failed"].get(provider, 0),
        )
        rows.append(ProviderProgress(
            expected=split.expected, ok=split.ok, failed=split.failed, cancelled=split.cancelled,
            outcome=outcomes.provider_outcome(state=state, split=split),
            provider=provider, label=provider_label(provider), state=state, error=errors.get(provider, ""),
        ))
    return rows


def run_bar(progress: dict, group_status: str) -> Bar:
    """The whole run's bar and outcome from its progress object."""
    stats = progress["stats"]
    return Bar(
        expected=stats["expectedResponses"], ok=stats["actualResponses"], failed=stats["failedResponses"],
        cancelled=stats["cancelledResponses"], outcome=outcomes.run_outcome(progress, group_status),
    )


def run_outcome(progress: dict, group_status: str) -> tuple[str, str]:
    """(outcome key, label) that a run shows; the page script applies the same rules (rules.js)."""
    outcome = outcomes.run_outcome(progress, group_status)
    return outcome, outcomes.OUTCOME_LABELS[outcome]


def group_bar(group: JobGroup, open_counts: dict[str, int] | None = None) -> Bar:
    """A run's bar in a list: from its final mirror when finished, else from its items' counts so far."""
    if group.status not in JobGroup.UNFINISHED and group.progress:
        return run_bar(group.progress, group.status)
    counts = open_counts or {}
    ok, failed, cancelled = counts.get("ok", 0), counts.get("failed", 0), counts.get("cancelled", 0)
    outcome = "running" if ok + failed + cancelled or counts.get("running") else "queued"
    if group.status in (JobGroup.Status.FAILED, JobGroup.Status.CANCELLED):
        outcome = str(group.status)
    elif group.status not in JobGroup.UNFINISHED and group.status in outcomes.OUTCOME_LABELS:
        outcome = str(group.status)
    return Bar(expected=group.expected_responses, ok=ok, failed=failed, cancelled=cancelled, outcome=outcome)


@dataclass(frozen=True)
class PastRun:
    """One row of a workspace's past runs: outcome, counts, duration, trigger and who started it."""

    group: JobGroup
    bar: Bar
    duration: str
    trigger: str
    started_by: str


def past_run_row(group: JobGroup, open_counts: dict[str, int] | None = None) -> PastRun:
    trigger = getattr(group, "trigger", "") or ("rerun" if group.rerun_of_id else "manual")
    return PastRun(
        group=group, bar=group_bar(group, open_counts), duration=group_duration(group), trigger=trigger,
        started_by=group.triggered_by.get_username() if group.triggered_by_id and group.triggered_by else "—",
    )


@dataclass(frozen=True)
class RunCost:
    """What pressing "Run now" or "Re-run" will spend: prompts × providers × samples provider calls."""

    prompts: int
    providers: int
    samples: int
    calls: int
    live: bool
    confirm_above: int
    items: int | None = None  # a re-run of failed items asks exactly these

    @property
    def needs_confirmation(self) -> bool:
        return self.live and self.calls > self.confirm_above

    @property
    def text(self) -> str:
        def plural(n: int, word: str) -> str:
            return f"{n} {word}{'' if n == 1 else 's'}"

        if self.items is not None:
            return f"{plural(self.items, 'unanswered item')} = {plural(self.calls, 'provider call')}"
        return (f"{plural(self.prompts, 'prompt')} × {plural(self.providers, 'provider')} × "
                f"{plural(self.samples, 'sample')} = {plural(self.calls, 'provider call')}")

    @property
    def confirm_message(self) -> str:
        return (f"This makes {self.calls} live provider calls, which the providers bill. "
                f"Start it? (Asked above {self.confirm_above} calls: AGENT_CONFIRM_CALLS_ABOVE.)")


def run_cost(*, workspace, prompts: int, providers: int | None = None, items: int | None = None) -> RunCost:
    """The calls of a run of `prompts` active prompts on the workspace's providers, or of `items` exactly."""
    from django.conf import settings

    samples = int(getattr(workspace, "samples_per_run", 1) or 1)
    providers = len(workspace.enabled_providers or []) if providers is None else providers
    calls = items if items is not None else prompts * providers * samples
    return RunCost(
        prompts=prompts, providers=providers, samples=samples, calls=calls, items=items,
        live=settings.AGENT_PROVIDER_BACKEND == "live", confirm_above=settings.AGENT_CONFIRM_CALLS_ABOVE,
    )


def run_problems(progress: dict, group: JobGroup, provider_errors: dict[str, str]) -> list[tuple[str, str]]:
    """(who, why) lines for a finished run: the run's own error, then each provider with failures."""
    if progress["status"] != outcomes.COMPLETED:
        return []
    lines = []
    if group.status == JobGroup.Status.FAILED and group.error:
        lines.append(("Run", group.error))
    last_errors = progress_provider_errors(progress)
    for provider in progress["providers"]:
        failed = progress["failed"].get(provider, 0)
        if provider_errors.get(provider):
            why = provider_errors[provider]
        elif failed:
            # A provider with some answers keeps no error of its own: show its latest failed item's.
            last = last_errors.get(provider) or job_item_last_error(group=group, provider=provider)
            why = f"{failed} item{'s' if failed != 1 else ''} failed" + (f"; last error: {last}" if last else "")
        else:
            continue
        lines.append((provider_label(provider), why))
    return lines


def group_duration(group: JobGroup, *, now=None) -> str:
    """How long a run took (or has taken so far)."""
    from django.utils import timezone

    if group.finished_at:
        return duration_text((group.finished_at - group.created_at).total_seconds())
    if group.status in JobGroup.UNFINISHED:
        return f"{duration_text(((now or timezone.now()) - group.created_at).total_seconds())} so far"
    return "—"


def duration_text(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
