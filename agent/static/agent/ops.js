/* The live part of the operations page: polls GET /api/queues/ every 2 s for the queue table and
   /ops/activity/ every 10 s for the throughput chart (uPlot), recent failures and runs in flight.
   Pause and resume are plain forms (they work without this script); this script asks for
   confirmation first and keeps each button in step with the queue's state. */
(function () {
  "use strict";

  var root = document.getElementById("ops");
  if (!root) return;

  var QUEUES_MS = 2000;
  var ACTIVITY_MS = 10000;
  var COLORS = { chatgpt: "#0f7b4f", perplexity: "#1f5fd1", gemini: "#b35c00", claude: "#8a3fb5" };
  var rows = {};
  root.querySelectorAll("#queues tbody tr[data-provider]").forEach(function (row) { rows[row.dataset.provider] = row; });
  var chart = null;

  function node(tag, attrs, children) {
    var element = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { element.setAttribute(name, attrs[name]); });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      element.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return element;
  }

  function setText(element, text) { if (element.textContent !== text) element.textContent = text; }

  // Confirmation before steering a queue; a cancelled dialog sends nothing.
  root.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList.contains("steer")) return;
    var row = form.closest("tr");
    var pausing = form.action.indexOf(form.dataset.pauseUrl) !== -1;
    var question = pausing
      ? "Pause the " + row.dataset.label + " queue? No new item of it starts on any host until it is resumed; running items finish."
      : "Resume the " + row.dataset.label + " queue? Its consumers start taking items again.";
    if (!window.confirm(question)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  function renderQueue(q) {
    var row = rows[q.provider];
    if (!row) return;
    var state = row.querySelector(".q-state");
    var wanted = q.paused ? "Paused" + (q.paused_by ? " by " + q.paused_by : "") : "Running";
    if (state.dataset.shown !== wanted) {
      var parts = [node("span", { "class": "badge " + (q.paused ? "status-paused" : "status-ok") }, [q.paused ? "Paused" : "Running"])];
      if (q.paused && q.paused_by) parts.push(" ", node("span", { "class": "muted small" }, ["by " + q.paused_by]));
      state.replaceChildren.apply(state, parts);
      state.dataset.shown = wanted;
    }
    setText(row.querySelector(".q-waiting"), String(q.waiting));
    setText(row.querySelector(".q-scheduled"), String(q.scheduled));
    setText(row.querySelector(".q-running"), String(q.running));
    setText(row.querySelector(".q-consumers"), q.consumers + " (" + q.workers + " workers" +
      (q.hosts.length ? " on " + q.hosts.join(", ") : "") + ")");
    setText(row.querySelector(".q-last-hour"), q.last_hour.ok + " ok, " + q.last_hour.failed + " failed");
    setText(row.querySelector(".q-latency"), q.last_hour.p50_ms === null ? "–" : q.last_hour.p50_ms + " / " + q.last_hour.p95_ms + " ms");
    var form = row.querySelector("form.steer");
    if (form && !form.dataset.submitted) {
      form.action = q.paused ? form.dataset.resumeUrl : form.dataset.pauseUrl;
      var button = form.querySelector("button");
      setText(button, q.paused ? "Resume" : "Pause");
      button.className = q.paused ? "" : "danger";
    }
  }

  function pollQueues() {
    fetch(root.dataset.queuesUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        body.results.forEach(renderQueue);
        document.getElementById("ops-poll-note").hidden = true;
      })
      .catch(function (error) {
        var note = document.getElementById("ops-poll-note");
        note.textContent = "Could not refresh the queues (" + error.message + "); retrying.";
        note.hidden = false;
      })
      .finally(function () { setTimeout(pollQueues, QUEUES_MS); });
  }

  function drawChart(throughput) {
    var box = document.getElementById("throughput-chart");
    if (!window.uPlot) {
      document.getElementById("throughput-fallback").hidden = false;
      return;
    }
    var providers = Object.keys(throughput.providers);
    var data = [throughput.minutes].concat(providers.map(function (p) {
      var t = throughput.providers[p];
      return t.ok.map(function (ok, i) { return ok + t.failed[i]; });
    }));
    if (chart) { chart.setData(data); return; }
    var options = {
      width: Math.max(300, box.clientWidth || 800),
      height: 220,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(5, max)]; } } },
      axes: [{}, { label: "items / min" }],
      series: [{}].concat(providers.map(function (p) {
        var row = rows[p];
        return { label: row ? row.dataset.label : p, stroke: COLORS[p] || "#333", width: 2,
                 fill: (COLORS[p] || "#333") + "22", points: { show: false } };
      })),
    };
    chart = new window.uPlot(options, data, box);
  }

  function renderTable(id, items, cells, empty, columns) {
    var body = document.querySelector("#" + id + " tbody");
    if (!items.length) {
      body.replaceChildren(node("tr", { "class": "empty" }, [node("td", { colspan: String(columns), "class": "muted" }, [empty])]));
      return;
    }
    body.replaceChildren.apply(body, items.map(function (item) { return node("tr", {}, cells(item)); }));
  }

  function runLink(item) {
    return node("a", { href: item.run_url }, [node("code", {}, [item.run.slice(0, 8)])]);
  }

  function renderActivity(body) {
    drawChart(body.throughput);
    renderTable("failures", body.failures, function (f) {
      return [node("td", {}, [(f.finished_at || "").slice(0, 19)]), node("td", {}, [f.provider_label]),
              node("td", {}, [runLink(f)]), node("td", {}, [f.prompt_text]), node("td", {}, [f.error])];
    }, "No failures.", 5);
    renderTable("in-flight", body.in_flight, function (r) {
      return [node("td", {}, [runLink(r)]), node("td", {}, [r.workspace]), node("td", {}, [r.status]),
              node("td", {}, [r.providers.join(", ")]), node("td", {}, [String(r.expected)]),
              node("td", {}, [r.created_at.slice(0, 19)])];
    }, "No run in flight.", 6);
  }

  function pollActivity() {
    fetch(root.dataset.activityUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) { if (body) renderActivity(body); })
      .catch(function () { /* the queue poll reports connection trouble */ })
      .finally(function () { setTimeout(pollActivity, ACTIVITY_MS); });
  }

  drawChart(JSON.parse(document.getElementById("throughput-data").textContent));
  setTimeout(pollQueues, QUEUES_MS);
  setTimeout(pollActivity, ACTIVITY_MS);
})();
