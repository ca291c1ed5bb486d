"""Pure rules about how a run turned out: a provider's state, the run's outcome, a bar's fill.

Each rule has its home here, and everything asks it: the database settle, the progress object
rebuilt from rows, the pages, the admin and the CLI. The Lua scripts of `agent/progress_lua.py` and
the page script `agent/static/agent/rules.js` hold copies that parity tests pin to these.
"""
from __future__ import annotations

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


# (key, label) of every outcome a run can show; the key is the CSS and data-attribute name.
OUTCOME_LABELS = {
    "cancelled": "Cancelled",
    "failed": "Could not run",
    "failures": "Finished with failures",
    "completed": "Completed",
    "running": "Running",
    "queued": "Queued",
}


def run_outcome(progress: dict, group_status: str) -> str:
    """The outcome a run shows, from its progress object and the group's status."""
    stats = progress["stats"]
    if progress.get("cancelled") or group_status == "cancelled":
        return "cancelled"
    if group_status == "failed":
        return "failed"
    if progress["status"] == COMPLETED:
        return "failures" if stats["failedResponses"] else "completed"
    if any(state != PENDING for state in progress["providers"].values()) or stats["actualResponses"] + stats["failedResponses"]:
        return "running"
    return "queued"
