/* The run page's copy of the rules in agent/outcomes.py (bar fill, per cent, outcome) and of the
   progress object's error format in agent/progress.py. tests/agent/test_outcomes.py runs this file
   under Node against the Python originals, so the two cannot drift apart. */
(function (root) {
  "use strict";

  var FINAL_PROVIDER_STATES = { completed: true, failed: true };
  var OUTCOME_LABELS = {
    scheduled: "scheduled",
    queued: "queued",
    running: "running",
    completed: "completed",
    completed_with_failures: "completed with failures",
    failed: "failed",
    cancelled: "cancelled"
  };
  var BAR_SCALE = 1000;
  var MIN_SEGMENT = 4;

  function percent(done, total) { return total ? Math.min(100, Math.floor(done * 100 / total)) : 100; }

  /* The progress object counts cancelled items only in the run's total, so a provider in a final
     state is full whatever its ok + failed. */
  function providerBarFill(state, expected, ok, failed) {
    return FINAL_PROVIDER_STATES[state] ? expected : Math.min(expected, ok + failed);
  }

  function finishedCount(stats) { return stats.actualResponses + stats.failedResponses + stats.cancelledResponses; }

  function runOutcome(progress, groupStatus) {
    var stats = progress.stats;
    if (progress.cancelled || groupStatus === "cancelled") return "cancelled";
    if (groupStatus === "failed") return "failed";
    if (groupStatus === "scheduled") return "scheduled";
    if (progress.status === "completed") {
      if (stats.failedResponses && !stats.actualResponses) return "failed";
      return stats.failedResponses ? "completed_with_failures" : "completed";
    }
    var started = Object.keys(progress.providers).some(function (p) { return progress.providers[p] !== "pending"; });
    if (started || stats.actualResponses + stats.failedResponses) return "running";
    return "queued";
  }

  function providerSplit(state, expected, ok, failed) {
    ok = Math.min(ok, expected);
    failed = Math.min(failed, expected - ok);
    var cancelled = providerBarFill(state, expected, ok, failed) - ok - failed;
    return { expected: expected, ok: ok, failed: failed, cancelled: cancelled, open: expected - ok - failed - cancelled };
  }

  function providerOutcome(state, split) {
    if (!FINAL_PROVIDER_STATES[state]) return state === "pending" ? "queued" : "running";
    if (split.cancelled) return "cancelled";
    if (split.failed && !split.ok) return "failed";
    return split.failed ? "completed_with_failures" : "completed";
  }

  /* Segment widths on a 0..1000 bar; a non-zero count never vanishes, the sum never exceeds the whole. */
  function barWidths(expected, ok, failed, cancelled) {
    if (!expected) return { ok: 0, failed: 0, cancelled: 0 };
    function width(n) { return n ? Math.max(MIN_SEGMENT, Math.floor(n * BAR_SCALE / expected)) : 0; }
    var widths = { ok: width(ok), failed: width(failed), cancelled: width(cancelled) };
    var over = widths.ok + widths.failed + widths.cancelled - BAR_SCALE;
    ["ok", "failed", "cancelled"].forEach(function (key) {
      if (over > 0 && widths[key] > MIN_SEGMENT) {
        var take = Math.min(over, widths[key] - MIN_SEGMENT);
        widths[key] -= take;
        over -= take;
      }
    });
    return widths;
  }

  /* "gemini: all 3 items failed; last error: ...; chatgpt: ..." -> {gemini: "...", chatgpt: "..."} */
  function providerErrors(error, providers) {
    var found = {};
    if (!error || !providers.length) return found;
    var names = providers.map(function (p) { return p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }).join("|");
    error.split(new RegExp("; (?=(?:" + names + "): )")).forEach(function (part) {
      var match = part.match(new RegExp("^(" + names + "): ([\\s\\S]*)$"));
      if (match) found[match[1]] = match[2];
    });
    return found;
  }

  var rules = {
    OUTCOME_LABELS: OUTCOME_LABELS,
    percent: percent,
    providerBarFill: providerBarFill,
    finishedCount: finishedCount,
    runOutcome: runOutcome,
    providerSplit: providerSplit,
    providerOutcome: providerOutcome,
    barWidths: barWidths,
    providerErrors: providerErrors
  };
  if (typeof module === "object" && module.exports) module.exports = rules;
  else root.OneglanseRules = rules;
})(this);
