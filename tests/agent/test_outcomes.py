"""The run rules of agent/outcomes.py, and the copies that must agree with them: the Lua of
agent/progress_lua.py (run in a real Redis) and the page's agent/static/agent/rules.js (run in Node)."""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from agent import outcomes, progress, progress_lua

RULES_JS = Path(__file__).resolve().parents[2] / "agent" / "static" / "agent" / "rules.js"

# Every (expected, ok, failed, cancelled) a provider of up to 3 items can reach, before and after it started.
PROVIDER_CASES = [
    (expected, ok, failed, cancelled, started)
    for expected in range(4)
    for ok, failed, cancelled in itertools.product(range(4), repeat=3)
    if ok + failed + cancelled <= expected
    for started in (False, True)
]


def _progress(states: dict[str, str], *, status: str, ok: int, failed: int, cancelled: bool) -> dict:
    return {
        "status": status, "updateId": 1, "providers": states, "results": {}, "failed": {},
        "stats": {"totalPrompts": 2, "expectedResponses": 4, "actualResponses": ok, "failedResponses": failed,
                  "cancelledResponses": 0},
        **({"cancelled": True} if cancelled else {}),
    }


OUTCOME_CASES = [
    (_progress({"chatgpt": a, "claude": b}, status=status, ok=ok, failed=failed, cancelled=cancelled), group_status)
    for a, b in [("pending", "pending"), ("processing", "pending"), ("completed", "failed")]
    for status in ("pending", "completed")
    for ok, failed in [(0, 0), (1, 0), (0, 1), (2, 2)]
    for cancelled in (False, True)
    for group_status in ("queued", "running", "completed", "cancelled", "failed")
]


def test_a_provider_fails_only_when_nothing_answered_and_something_failed() -> None:
    assert outcomes.provider_final_state(ok=0, failed=2) == "failed"
    assert outcomes.provider_final_state(ok=1, failed=2) == "completed"
    assert outcomes.provider_final_state(ok=0, failed=0) == "completed"  # every item cancelled


def test_a_finished_provider_shows_a_full_bar_even_with_cancelled_items() -> None:
    assert outcomes.provider_bar_fill(state="completed", expected=5, ok=2, failed=0) == 5
    assert outcomes.provider_bar_fill(state="processing", expected=5, ok=2, failed=1) == 3
    assert outcomes.percent(1, 3) == 33 and outcomes.percent(0, 0) == 100


def test_run_outcome_names_what_the_user_sees() -> None:
    finished_with_failures = _progress({"chatgpt": "completed"}, status="completed", ok=3, failed=1, cancelled=False)
    assert outcomes.run_outcome(finished_with_failures, "completed") == "completed_with_failures"
    untouched = _progress({"chatgpt": "pending"}, status="pending", ok=0, failed=0, cancelled=False)
    assert outcomes.run_outcome(untouched, "queued") == "queued"
    assert outcomes.run_outcome(untouched, "failed") == "failed"


# The driver sets one provider's fields, runs the script's own settle() and returns the state it left.
_LUA_DRIVER = progress_lua.SETTLE_LUA + """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's:p', ARGV[1], 'e:p', ARGV[2], 'ok:p', ARGV[3], 'f:p', ARGV[4], 'c:p', ARGV[5], 'u', 0)
settle(KEYS[1], 'p')
return redis.call('HGET', KEYS[1], 's:p')
"""


def test_the_lua_copy_settles_providers_as_the_python_rule_does(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    script = client.register_script(_LUA_DRIVER)
    for expected, ok, failed, cancelled, started in PROVIDER_CASES:
        before = "processing" if started else "pending"
        lua = script(keys=["test:outcomes:parity"], args=[before, expected, ok, failed, cancelled]).decode()
        python = outcomes.provider_state(expected=expected, ok=ok, failed=failed, cancelled=cancelled, started=started)
        assert lua == python, (expected, ok, failed, cancelled, started)


def _node(program: str, cases: list) -> list:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed; the page script's parity with agent/outcomes.py is not checked")
    result = subprocess.run(
        [node, "-e", f"const rules = require({json.dumps(str(RULES_JS))}); "
                     f"const cases = JSON.parse(require('fs').readFileSync(0, 'utf8')); "
                     f"process.stdout.write(JSON.stringify(cases.map(c => {program})));"],
        input=json.dumps(cases), capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(result.stdout)


def test_the_page_script_fills_bars_as_the_python_rule_does() -> None:
    cases = [
        (state, expected, ok, failed)
        for state in ("pending", "processing", "completed", "failed")
        for expected, ok, failed, _, _ in PROVIDER_CASES
    ]
    js = _node("[rules.providerBarFill(c[0], c[1], c[2], c[3]), rules.percent(c[2] + c[3], c[1])]", cases)
    python = [
        [outcomes.provider_bar_fill(state=s, expected=e, ok=o, failed=f), outcomes.percent(o + f, e)]
        for s, e, o, f in cases
    ]
    assert js == python


def test_the_page_script_names_run_outcomes_as_the_python_rule_does() -> None:
    js = _node("[rules.runOutcome(c[0], c[1]), rules.OUTCOME_LABELS[rules.runOutcome(c[0], c[1])], "
               "rules.finishedCount(c[0].stats)]", OUTCOME_CASES)
    python = []
    for progress_object, group_status in OUTCOME_CASES:
        outcome = outcomes.run_outcome(progress_object, group_status)
        python.append([outcome, outcomes.OUTCOME_LABELS[outcome], outcomes.finished_count(progress_object["stats"])])
    assert js == python


def test_the_page_script_reads_provider_errors_as_the_python_code_does() -> None:
    errors = {"gemini": "all 3 items failed; last error: gemini: quota; retry later", "chatgpt": "timeout"}
    objects = [
        {"providers": {"gemini": "failed", "chatgpt": "completed", "claude": "completed"},
         "error": progress._error_text(group_error, errors)}
        for group_error in ("", "the queue is unavailable")
    ]
    js = _node("rules.providerErrors(c.error, Object.keys(c.providers))", objects)
    assert js == [progress.progress_provider_errors(o) for o in objects]
    assert js[0] == errors
