/* The live part of a group's page: polls GET /api/runs/{id}/status/ every 2 s, re-reads the
   visible page of answers only when updateId changed, and stops once the group is completed.
   Status requests revalidate with the API's ETag, so an unchanged group costs a 304 and no body.
   The rules (bar fill, outcome, error format) come from rules.js, the copy of agent/outcomes.py. */
(function () {
  "use strict";

  var root = document.getElementById("group");
  var rules = window.OneglanseRules;
  if (!root || !window.fetch || !rules) return;

  var POLL_MS = 2000;
  var MAX_BACKOFF_MS = 30000;
  var FINAL_ITEM = { ok: true, failed: true, cancelled: true };
  var statusUrl = root.dataset.statusUrl;
  var detailUrl = root.dataset.detailUrl;
  var answersUrl = root.dataset.answersUrl + "?page=" + encodeURIComponent(root.dataset.page) +
    "&page_size=" + encodeURIComponent(root.dataset.pageSize) + (root.dataset.filterQuery ? "&" + root.dataset.filterQuery : "");
  var lastUpdateId = null; // null: the first poll always re-reads the answers
  var failuresInARow = 0;

  var providerRows = {};
  root.querySelectorAll(".provider-row").forEach(function (row) {
    providerRows[row.dataset.provider] = row;
  });

  function byId(id) { return document.getElementById(id); }

  var percent = rules.percent;

  function label(provider) {
    var row = providerRows[provider];
    return row ? row.dataset.label : provider;
  }

  function node(tag, attrs, children) {
    var element = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { element.setAttribute(name, attrs[name]); });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      element.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return element;
  }

  /* A source the answer cites, or one the provider only retrieved (same words as templates/runs/_answer.html). */
  function citedBadge(cited) {
    if (cited === true) return node("span", { "class": "badge cited", title: "Cited in the answer" }, ["cited"]);
    if (cited === false) return node("span", { "class": "badge found", title: "Retrieved by the provider but not cited in the answer" }, ["found only"]);
    return null;
  }

  function outcomeOf(progress, groupStatus) {
    var outcome = rules.runOutcome(progress, groupStatus);
    return [outcome, rules.OUTCOME_LABELS[outcome]];
  }

  function statusText(outcome, progress, detail) {
    var s = progress.stats;
    switch (outcome) {
      case "cancelled":
        return "This run was cancelled: " + s.actualResponses + " answers kept, " + s.cancelledResponses +
          " items cancelled" + (s.failedResponses ? ", " + s.failedResponses + " failed" : "") + "." +
          (progress.status === "completed" ? "" : " Items already running will finish.");
      case "failed":
        if (root.dataset.groupStatus === "failed" || (detail && detail.status === "failed")) {
          return "This run could not start: " + ((detail && detail.error) || progress.error || "unknown error");
        }
        return "No item was answered: all " + s.failedResponses + " failed.";
      case "completed_with_failures":
        return "Completed with failures: " + s.failedResponses + " of " + s.expectedResponses + " items failed.";
      case "completed":
        return "Completed: every one of the " + s.expectedResponses + " items was answered.";
      case "running":
        return "Running: answers appear below as they arrive.";
      case "scheduled":
        return "Scheduled: it starts at its set time.";
      default:
        return "Queued: waiting for the providers' consumers to pick the items up.";
    }
  }

  function showOutcome(outcome, text) {
    var badge = byId("group-status-badge");
    badge.className = "badge status-" + outcome[0];
    badge.textContent = outcome[1];
    var line = byId("group-status-text");
    if (line.textContent !== text) line.textContent = text; // unchanged text is not re-announced
    root.dataset.outcome = outcome[0];
  }

  function showProblems(lines) {
    var box = byId("group-problem");
    var list = byId("group-problem-list");
    list.replaceChildren.apply(list, lines.map(function (line) {
      return node("li", {}, [node("strong", {}, [line[0]]), line[1] ? ": " + line[1] : ""]);
    }));
    box.hidden = lines.length === 0;
  }

  /* The SVG bar of templates/runs/_bar.html: three segments on a 0..1000 scale. */
  function drawBar(svg, expected, ok, failed, cancelled, text) {
    if (!svg) return;
    var widths = rules.barWidths(expected, ok, failed, cancelled);
    var x = 0;
    ["ok", "failed", "cancelled"].forEach(function (key) {
      var rect = svg.querySelector(".seg-" + key);
      rect.setAttribute("x", String(x));
      rect.setAttribute("width", String(widths[key]));
      x += widths[key];
    });
    svg.setAttribute("aria-label", text);
  }

  function barText(expected, ok, failed, cancelled) {
    return ok + " answered · " + failed + " failed · " + cancelled + " cancelled of " + expected;
  }

  var shownFinished = Number(root.dataset.finished || 0);

  function renderProgress(progress, paused) {
    var s = progress.stats;
    var finished = rules.finishedCount(s);
    // The first page came from one database snapshot; the live mirror may trail it by a moment.
    // A poll never moves the counters backwards.
    if (finished < shownFinished && progress.status !== "completed") return false;
    shownFinished = finished;
    var totalText = barText(s.expectedResponses, s.actualResponses, s.failedResponses, s.cancelledResponses);
    drawBar(byId("bar-total"), s.expectedResponses, s.actualResponses, s.failedResponses, s.cancelledResponses, totalText);
    byId("bar-total-text").textContent = totalText + " (" + percent(finished, s.expectedResponses) + " % finished)";
    byId("count-ok").textContent = s.actualResponses;
    byId("count-failed").textContent = s.failedResponses;
    byId("count-cancelled").textContent = s.cancelledResponses;
    byId("count-expected").textContent = s.expectedResponses;

    Object.keys(progress.providers).forEach(function (provider) {
      var row = providerRows[provider];
      if (!row) return;
      var state = progress.providers[provider];
      var split = rules.providerSplit(state, Number(row.dataset.expected), progress.results[provider] || 0, progress.failed[provider] || 0);
      var outcome = rules.providerOutcome(state, split);
      var text = barText(split.expected, split.ok, split.failed, split.cancelled);
      drawBar(byId("bar-" + provider), split.expected, split.ok, split.failed, split.cancelled, text);
      row.dataset.outcome = outcome;
      var parts = [text + " · ", node("span", { "class": "state outcome-" + outcome }, [rules.OUTCOME_LABELS[outcome]])];
      // An operator paused this provider's queue: waiting, not stuck.
      if (paused.indexOf(provider) !== -1) parts.push(" · ", node("span", { "class": "state state-paused" }, ["queue paused"]));
      var line = byId("bar-" + provider + "-text");
      line.replaceChildren.apply(line, parts);
    });
    var outcome = outcomeOf(progress, root.dataset.groupStatus);
    showOutcome(outcome, statusText(outcome[0], progress, null));
    return true;
  }

  function renderAnswer(item, provider) {
    var heading = node("h4", {}, [label(provider), " ", node("span", { "class": "badge status-" + item.status }, [item.status])]);
    if (item.backend === "simulated") {
      heading.appendChild(document.createTextNode(" "));
      heading.appendChild(node("span", {
        "class": "badge simulated",
        title: "Answered offline by the simulated backend, not by the real provider"
      }, ["simulated"]));
    }
    var body = [heading];
    if (item.status === "ok") {
      body.push(node("div", { "class": "answer-text", tabindex: "0", role: "region", "aria-label": label(provider) + " answer" }, [item.text]));
      var sources = (item.sources || []).map(function (source) {
        var url = String(source.url || "");
        var text = String(source.title || source.domain || url);
        // Sources come from outside: only http(s) becomes a link, never javascript: and the like.
        var safe = /^https?:\/\//i.test(url);
        var first = safe
          ? node("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow" }, [text])
          : node("span", {}, [text + " "]);
        return node("li", {}, [first, safe ? null : node("span", { "class": "muted" }, ["(" + url + ")"]),
          source.domain ? " " : null, source.domain ? node("span", { "class": "muted" }, [String(source.domain)]) : null,
          citedBadge(source.cited)]);
      });
      if (sources.length) body.push(node("ul", { "class": "sources", "aria-label": "Sources" }, sources));
      var meta = [];
      if (item.latency_ms !== null && item.latency_ms !== undefined) meta.push(item.latency_ms + " ms");
      if (item.model) meta.push(item.model);
      if (item.attempts > 1) meta.push(item.attempts + " attempts");
      body.push(node("p", { "class": "meta" }, [meta.join(" · ")]));
    } else if (item.status === "failed") {
      body.push(node("p", { "class": "error" }, [item.error || "Failed without a message."]));
    } else if (item.status === "cancelled") {
      body.push(node("p", { "class": "muted" }, ["Cancelled before it started."]));
    } else {
      body.push(node("p", { "class": "muted" }, [item.status === "running" ? "Asking…" : "Waiting…"]));
    }
    var cell = node("div", {
      "class": "answer status-" + item.status, "data-item-id": String(item.id), "data-status": item.status, "data-provider": provider
    }, body);
    return cell;
  }

  function refreshAnswers() {
    var cells = root.querySelectorAll(".answer[data-item-id]");
    var open = Array.prototype.some.call(cells, function (cell) { return !FINAL_ITEM[cell.dataset.status]; });
    if (!open) return Promise.resolve(); // nothing on this page can change any more
    return fetch(answersUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body) return;
        body.results.forEach(function (item) {
          var cell = root.querySelector('.answer[data-item-id="' + item.id + '"]');
          if (!cell || cell.dataset.status === item.status) return;
          cell.replaceWith(renderAnswer(item, item.provider));
        });
      });
  }

  function finish(progress) {
    byId("cancel-form").hidden = true;
    var s = progress.stats;
    byId("rerun-failed-form").hidden = !(s.failedResponses + s.cancelledResponses);
    var failedUrl = root.dataset.answersUrl + "?status=failed&page_size=1000";
    var getJson = function (url) {
      return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .catch(function () { return null; });
    };
    return Promise.all([getJson(detailUrl), s.failedResponses ? getJson(failedUrl) : Promise.resolve(null)])
      .then(function (both) {
        var detail = both[0];
        var itemErrors = {};
        ((both[1] && both[1].results) || []).forEach(function (item) {
          if (item.error && !itemErrors[item.provider]) itemErrors[item.provider] = item.error;
        });
        var outcome = outcomeOf(progress, (detail && detail.status) || root.dataset.groupStatus);
        showOutcome(outcome, statusText(outcome[0], progress, detail));
        var fromRows = {};
        ((detail && detail.group_providers) || []).forEach(function (row) { if (row.error) fromRows[row.provider] = row.error; });
        var lastErrors = rules.providerErrors(progress.error, Object.keys(progress.providers));
        Object.keys(itemErrors).forEach(function (p) { if (!lastErrors[p]) lastErrors[p] = itemErrors[p]; });
        var lines = [];
        if (outcome[0] === "failed" && detail && detail.error) lines.push(["Run", detail.error]);
        Object.keys(progress.providers).forEach(function (provider) {
          var failed = progress.failed[provider] || 0;
          if (!failed && !fromRows[provider]) return;
          var why = fromRows[provider] ||
            (failed + " item" + (failed === 1 ? "" : "s") + " failed" + (lastErrors[provider] ? "; last error: " + lastErrors[provider] : ""));
          lines.push([label(provider), why]);
        });
        showProblems(lines);
        showErrorGroups((both[1] && both[1].results) || []);
      });
  }

  /* Identical errors as one line each ("3 × Gemini: quota exhausted"), like the server's first render. */
  function showErrorGroups(failedItems) {
    var list = byId("error-groups");
    if (!list || !failedItems.length) return;
    var groups = {};
    var order = [];
    failedItems.forEach(function (item) {
      var key = item.provider + "\u0000" + (item.error || "");
      if (!groups[key]) { groups[key] = { provider: item.provider, error: item.error, n: 0 }; order.push(key); }
      groups[key].n += 1;
    });
    order.sort(function (a, b) { return groups[b].n - groups[a].n || groups[a].provider.localeCompare(groups[b].provider); });
    list.replaceChildren.apply(list, order.slice(0, 20).map(function (key) {
      var g = groups[key];
      var error = g.error || "failed without a message";
      return node("li", {}, [
        node("strong", {}, [g.n + " ×"]), " " + label(g.provider) + ": ",
        node("span", { "class": "error" }, [error.length > 300 ? error.slice(0, 299) + "…" : error]), " ",
        node("a", { href: "?provider=" + encodeURIComponent(g.provider) + "&status=failed#answers-heading" }, ["show"])
      ]);
    }));
    list.hidden = false;
  }

  function note(text) {
    var element = byId("poll-note");
    element.textContent = text || "";
    element.hidden = !text;
  }

  function stop(outcome, text) {
    showOutcome(outcome, text);
    byId("cancel-form").hidden = true;
  }

  function poll() {
    fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-cache" })
      .then(function (response) {
        if (response.status === 404) {
          stop(["unknown", "Unknown run"],
            "This run was not found: it does not exist, or you are no longer a member of its workspace. Live updates stopped.");
          return;
        }
        if (response.status === 401 || response.status === 403) {
          stop(["unknown", "Signed out"], "Your session has ended: sign in again to follow this run. Live updates stopped.");
          return;
        }
        if (!response.ok) throw new Error("the server answered " + response.status);
        return response.json().then(function (body) {
          failuresInARow = 0;
          note("");
          var progress = body.response;
          if (!renderProgress(progress, body.paused_providers || [])) { setTimeout(poll, POLL_MS); return; }
          var changed = progress.updateId !== lastUpdateId;
          lastUpdateId = progress.updateId;
          return (changed ? refreshAnswers() : Promise.resolve()).then(function () {
            if (body.status === "completed") return finish(progress);
            setTimeout(poll, POLL_MS);
          });
        });
      })
      .catch(function (error) {
        failuresInARow += 1;
        var wait = Math.min(MAX_BACKOFF_MS, POLL_MS * Math.pow(2, failuresInARow - 1));
        note("Could not reach the server (" + error.message + "); trying again in " + Math.round(wait / 1000) + " s.");
        setTimeout(poll, wait);
      });
  }

  poll();
})();
