/* The run page's copy of the rules in agent/outcomes.py (bar fill, per cent, outcome) and of the
   progress object's error format in agent/progress.py. tests/agent/test_outcomes.py runs this file
   under Node against the Python originals, so the two cannot drift apart. */
(function (root) {
  "use strict";

  var FINAL_PROVIDER_STATES = { completed: true, failed: true };
  var OUTCOME_LABELS = {
    cancelled: "Cancelled",
    failed: "Could not run",
    failures: "Finished with failures",
    completed: "Completed",
    running: "Running",
    queued: "Queued"
  };

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
    if (progress.status === "completed") return stats.failedResponses ? "failures" : "completed";
    var started = Object.keys(progress.providers).some(function (p) { return progress.providers[p] !== "pending"; });
    if (started || stats.actualResponses + stats.failedResponses) return "running";
    return "queued";
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
    providerErrors: providerErrors
  };
  if (typeof module === "object" && module.exports) module.exports = rules;
  else root.OneglanseRules = rules;
})(this);
