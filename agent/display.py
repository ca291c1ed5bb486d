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
class ProviderProgress:
    """One provider's bar: `finished` over `expected`, as the page's script computes it too."""

    provider: str
    label: str
    state: str
    expected: int
    finished: int
    ok: int
    failed: int
    error: str

    @property
    def percent(self) -> int:
        return outcomes.percent(self.finished, self.expected)


def provider_progress(progress: dict, expected_by_provider: dict[str, int], errors: dict[str, str]) -> list[ProviderProgress]:
    """Per-provider bars from the progress object (contract)."""
    rows = []
    for provider, state in progress["providers"].items():
        expected = expected_by_provider.get(provider, 0)
        ok, failed = progress["results"].get(provider, 0), progress["failed"].get(provider, 0)
        rows.append(ProviderProgress(
            provider=provider, label=provider_label(provider), state=state, expected=expected,
            finished=outcomes.provider_bar_fill(state=state, expected=expected, ok=ok, failed=failed),
            ok=ok, failed=failed, error=errors.get(provider, ""),
        ))
    return rows


def run_outcome(progress: dict, group_status: str) -> tuple[str, str]:
    """(outcome key, label) that a run shows; the page script applies the same rules (rules.js)."""
    outcome = outcomes.run_outcome(progress, group_status)
    return outcome, outcomes.OUTCOME_LABELS[outcome]


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


def duration_text(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
