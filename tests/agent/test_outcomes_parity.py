"""The page script's copy of the outcome words and bar split (agent/static/agent/rules.js) against agent/outcomes.py.

Node runs the very file the browser loads; every case below must come out the same in both.
"""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agent import outcomes

SCRIPT = Path(__file__).resolve().parents[2] / "agent" / "static" / "agent" / "rules.js"
RUNNER = """
const o = require(process.argv[1]);
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = cases.map(function (c) {
  if (c.kind === "run") return o.runOutcome(c.progress, c.groupStatus);
  if (c.kind === "provider") {
    const split = o.providerSplit(c.state, c.expected, c.ok, c.failed);
    return [split, o.providerOutcome(c.state, split)];
  }
  if (c.kind === "bar") return o.barWidths(c.expected, c.ok, c.failed, c.cancelled);
  return o.OUTCOME_LABELS;
});
process.stdout.write(JSON.stringify(out));
"""


def _progress(status: str, providers: dict[str, str], ok: int, failed: int, cancelled: int, *, was_cancelled: bool) -> dict:
    progress = {
        "status": status, "updateId": 1, "providers": providers, "results": {}, "failed": {},
        "stats": {"totalPrompts": 5, "expectedResponses": 20, "actualResponses": ok, "failedResponses": failed,
                  "cancelledResponses": cancelled},
    }
    if was_cancelled:
        progress["cancelled"] = True
    return progress


def _cases() -> list[dict]:
    cases: list[dict] = [{"kind": "labels"}]
    statuses = ["scheduled", "queued", "running", "completed", "cancelled", "failed"]
    provider_states = [{"chatgpt": "pending"}, {"chatgpt": "processing"}, {"chatgpt": "completed", "gemini": "failed"}]
    for group_status, status, providers, (ok, failed, cancelled), was_cancelled in itertools.product(
        statuses, ["pending", "completed"], provider_states, [(0, 0, 0), (20, 0, 0), (15, 5, 0), (0, 20, 0), (3, 1, 16)],
        [False, True],
    ):
        cases.append({"kind": "run", "groupStatus": group_status,
                      "progress": _progress(status, providers, ok, failed, cancelled, was_cancelled=was_cancelled)})
    for state, (expected, ok, failed) in itertools.product(
        ["pending", "processing", "completed", "failed"],
        [(5, 0, 0), (5, 5, 0), (5, 2, 3), (5, 0, 5), (5, 1, 1), (0, 0, 0), (5, 7, 2)],
    ):
        cases.append({"kind": "provider", "state": state, "expected": expected, "ok": ok, "failed": failed})
    bars = [(0, 0, 0, 0), (1000, 1, 1, 998), (3, 1, 1, 1), (7, 7, 0, 0), (2500, 1, 0, 0), (5, 2, 0, 0)]
    for expected, ok, failed, cancelled in bars:
        cases.append({"kind": "bar", "expected": expected, "ok": ok, "failed": failed, "cancelled": cancelled})
    return cases


def _python(case: dict):
    if case["kind"] == "run":
        return outcomes.run_outcome(case["progress"], case["groupStatus"])
    if case["kind"] == "provider":
        split = outcomes.provider_split(state=case["state"], expected=case["expected"], ok=case["ok"], failed=case["failed"])
        return [split.as_json(), outcomes.provider_outcome(state=case["state"], split=split)]
    if case["kind"] == "bar":
        return outcomes.bar_widths(expected=case["expected"], ok=case["ok"], failed=case["failed"], cancelled=case["cancelled"])
    return outcomes.OUTCOME_LABELS


def test_page_script_outcome_rules_match_python() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs); the browser tests still cover the page")
    cases = _cases()
    ran = subprocess.run([node, "-e", RUNNER, str(SCRIPT)], input=json.dumps(cases), capture_output=True, text=True, check=True)
    from_script = json.loads(ran.stdout)
    mismatches = [(case, _python(case), got) for case, got in zip(cases, from_script, strict=True) if _python(case) != got]
    assert not mismatches, mismatches[:5]


def test_outcome_words_are_the_four_the_users_read() -> None:
    finished = {outcomes.OUTCOME_LABELS[key] for key in outcomes.FINISHED_OUTCOMES}
    assert finished == {"completed", "completed with failures", "failed", "cancelled"}


def test_a_run_where_some_items_failed_is_completed_with_failures_not_completed() -> None:
    progress = _progress("completed", {"chatgpt": "completed", "gemini": "failed"}, 15, 5, 0, was_cancelled=False)
    assert outcomes.run_outcome(progress, "completed") == "completed_with_failures"


def test_a_cancelled_provider_with_nothing_answered_reads_cancelled_not_completed() -> None:
    split = outcomes.provider_split(state="completed", expected=25, ok=0, failed=0)
    assert (split.cancelled, outcomes.provider_outcome(state="completed", split=split)) == (25, "cancelled")


def test_a_failed_segment_is_never_invisible_on_a_long_bar() -> None:
    widths = outcomes.bar_widths(expected=2500, ok=2499, failed=1, cancelled=0)
    assert widths["failed"] > 0 and sum(widths.values()) <= 1000
