/* The page script's copy of agent/outcomes.py: a run's outcome word, a provider's outcome word and
   how a bar splits into answered / failed / cancelled. tests/agent/test_outcomes_parity.py runs
   this file under Node against the Python original, so the two never drift apart. */
(function (exports) {
  "use strict";

  var LABELS = {
    scheduled: "scheduled",
    queued: "queued",
    running: "running",
    completed: "completed",
    completed_with_failures: "completed with failures",
    failed: "failed",
    cancelled: "cancelled"
  };
  var FINAL_PROVIDER_STATES = { completed: true, failed: true };

  function runOutcome(groupStatus, progress) {
    var s = progress.stats;
    if (progress.cancelled || groupStatus === "cancelled") return "cancelled";
    if (groupStatus === "failed") return "failed";
    if (groupStatus === "scheduled") return "scheduled";
    if (progress.status === "completed" || groupStatus === "completed") {
      if (s.failedResponses && !s.actualResponses) return "failed";
      return s.failedResponses ? "completed_with_failures" : "completed";
    }
    var started = Object.keys(progress.providers).some(function (p) { return progress.providers[p] !== "pending"; });
    return started || s.actualResponses + s.failedResponses ? "running" : "queued";
  }

  function providerSplit(state, expected, ok, failed) {
    // The progress object counts cancelled items only in the run's total: once a provider is in a
    // final state, what is neither answered nor failed was cancelled.
    ok = Math.min(ok, expected);
    failed = Math.min(failed, expected - ok);
    var cancelled = FINAL_PROVIDER_STATES[state] ? expected - ok - failed : 0;
    return { expected: expected, ok: ok, failed: failed, cancelled: cancelled, open: expected - ok - failed - cancelled };
  }

  function providerOutcome(state, split) {
    if (!FINAL_PROVIDER_STATES[state]) return state === "pending" ? "queued" : "running";
    if (split.cancelled) return "cancelled";
    if (split.failed && !split.ok) return "failed";
    return split.failed ? "completed_with_failures" : "completed";
  }

  /* Widths on a 0..1000 scale for the three segments, each rounded so that they never exceed the
     whole and a non-zero count is never invisible. */
  function barWidths(expected, ok, failed, cancelled) {
    if (!expected) return { ok: 0, failed: 0, cancelled: 0 };
    function width(n) { return n ? Math.max(4, Math.floor(n * 1000 / expected)) : 0; }
    var widths = { ok: width(ok), failed: width(failed), cancelled: width(cancelled) };
    var over = widths.ok + widths.failed + widths.cancelled - 1000;
    ["ok", "failed", "cancelled"].forEach(function (key) {
      if (over > 0 && widths[key] > 4) {
        var take = Math.min(over, widths[key] - 4);
        widths[key] -= take;
        over -= take;
      }
    });
    return widths;
  }

  function percent(done, total) { return total ? Math.min(100, Math.floor(done * 100 / total)) : 100; }

  exports.LABELS = LABELS;
  exports.runOutcome = runOutcome;
  exports.providerSplit = providerSplit;
  exports.providerOutcome = providerOutcome;
  exports.barWidths = barWidths;
  exports.percent = percent;
})(typeof module !== "undefined" && module.exports ? module.exports : (window.OneGlanseOutcomes = {}));
