"""Pure rules about how a run turned out: a provider's state, the run's outcome, a bar's fill.

Each rule has its home here, and everything asks it: the database settle, the progress object
rebuilt from rows, the pages, the admin and the CLI. The Lua scripts of `agent/progress_lua.py` and
the page script `agent/static/agent/rules.js` hold copies that parity tests pin to these.
"""
from __future__ import annotations

from dataclasses import dataclass

PENDING, PROCESSING, COMPLETED, FAILED = "pending", "processing", "completed", "failed"
FINAL_PROVIDER_STATES = (COMPLETED, FAILED)


def provider_final_state(*, ok: int, failed: int) -> str:
    """A provider whose items are all finished failed when none answered and at least one failed."""
    return FAILED if ok == 0 and failed > 0 else COMPLETED


def provider_state(*, expected: int, ok: int, failed: int, cancelled: int, started: bool) -> str:
    """A provider's state from its counts; `started` says an item of it ran or it left pending before."""
    if ok + failed + cancelled >= expected:
        return provider_final_state(ok=ok, failed=failed)
    if started or ok + failed + cancelled > 0:
        return PROCESSING
    return PENDING


def finished_count(stats: dict) -> int:
    """Items finished in a progress object's stats: answered, failed or cancelled."""
    return stats["actualResponses"] + stats["failedResponses"] + stats["cancelledResponses"]


def provider_bar_fill(*, state: str, expected: int, ok: int, failed: int) -> int:
    """How much of a provider's bar is full. The progress object counts cancelled items only in
    the run's total, so a provider in a final state is full whatever its ok + failed."""
    return expected if state in FINAL_PROVIDER_STATES else min(expected, ok + failed)


def percent(done: int, total: int) -> int:
    """Whole per cent for a bar's text; an empty run or provider counts as done."""
    if not total:
        return 100
    return min(100, done * 100 // total)


# One outcome word per run and per provider, the same on the pages, the admin, the CLI and the API.
# The key is the CSS class and data-attribute name; the label is what a user reads.
OUTCOME_LABELS = {
    "scheduled": "scheduled",
    "queued": "queued",
    "running": "running",
    "completed": "completed",
    "completed_with_failures": "completed with failures",
    "failed": "failed",
    "cancelled": "cancelled",
}
FINISHED_OUTCOMES = ("completed", "completed_with_failures", "failed", "cancelled")


def run_outcome(progress: dict, group_status: str) -> str:
    """The outcome a run shows, from its progress object and the group's status.

    A finished run where nothing was answered and something failed is `failed`, like a provider.
    """
    stats = progress["stats"]
    if progress.get("cancelled") or group_status == "cancelled":
        return "cancelled"
    if group_status == "failed":
        return "failed"
    if group_status == "scheduled":
        return "scheduled"
    if progress["status"] == COMPLETED:
        if stats["failedResponses"] and not stats["actualResponses"]:
            return "failed"
        return "completed_with_failures" if stats["failedResponses"] else "completed"
    if any(state != PENDING for state in progress["providers"].values()) or stats["actualResponses"] + stats["failedResponses"]:
        return "running"
    return "queued"


def outcome_label(outcome: str) -> str:
    return OUTCOME_LABELS.get(outcome, outcome)


@dataclass(frozen=True)
class ProviderSplit:
    """A provider's items as its bar draws them: answered, failed, cancelled, and still open."""

    expected: int
    ok: int
    failed: int
    cancelled: int

    @property
    def open(self) -> int:
        return self.expected - self.ok - self.failed - self.cancelled

    @property
    def finished(self) -> int:
        return self.ok + self.failed + self.cancelled

    def as_json(self) -> dict:
        return {"expected": self.expected, "ok": self.ok, "failed": self.failed, "cancelled": self.cancelled, "open": self.open}


def provider_split(*, state: str, expected: int, ok: int, failed: int) -> ProviderSplit:
    """The progress object counts cancelled items only in the run's total: once a provider is in a
    final state, what is neither answered nor failed was cancelled (the same rule as the bar fill)."""
    ok = min(ok, expected)
    failed = min(failed, expected - ok)
    cancelled = provider_bar_fill(state=state, expected=expected, ok=ok, failed=failed) - ok - failed
    return ProviderSplit(expected=expected, ok=ok, failed=failed, cancelled=cancelled)


def provider_outcome(*, state: str, split: ProviderSplit) -> str:
    """A provider's outcome word: a provider with cancelled items reads `cancelled`, never `completed`."""
    if state not in FINAL_PROVIDER_STATES:
        return "queued" if state == PENDING else "running"
    if split.cancelled:
        return "cancelled"
    if split.failed and not split.ok:
        return "failed"
    return "completed_with_failures" if split.failed else "completed"


BAR_SCALE = 1000
_MIN_SEGMENT = 4  # a non-zero count never vanishes from a long bar


def bar_widths(*, expected: int, ok: int, failed: int, cancelled: int) -> dict[str, int]:
    """Segment widths on a 0..BAR_SCALE bar (answered, failed, cancelled), never more than the whole."""
    if not expected:
        return {"ok": 0, "failed": 0, "cancelled": 0}

    def width(n: int) -> int:
        return max(_MIN_SEGMENT, n * BAR_SCALE // expected) if n else 0

    widths = {"ok": width(ok), "failed": width(failed), "cancelled": width(cancelled)}
    over = sum(widths.values()) - BAR_SCALE
    for key in ("ok", "failed", "cancelled"):
        if over > 0 and widths[key] > _MIN_SEGMENT:
            take = min(over, widths[key] - _MIN_SEGMENT)
            widths[key] -= take
            over -= take
    return widths
