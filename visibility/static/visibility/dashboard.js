/* The visibility dashboard's charts, drawn by uPlot from the page's JSON data island
   (#visibility-data): one small chart per assistant (the chosen brand's visibility with its
   95 % Wilson band) and the share of voice of every tracked brand over time. No inline script
   or style: the page runs under a strict Content-Security-Policy. */
(function () {
  "use strict";

  document.documentElement.classList.add("js");
  document.querySelectorAll("select.auto-submit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  var island = document.getElementById("visibility-data");
  if (!island) return;
  var data = JSON.parse(island.textContent);
  var charts = [];
  var COLORS = { all: "#1d2330", chatgpt: "#10a37f", perplexity: "#1f6fb2", gemini: "#8e44ad", claude: "#c15f3c" };
  var BRAND_COLORS = ["#2456c7", "#c0392b", "#16a085", "#d68910", "#7d3c98", "#2e4053", "#a04000", "#1abc9c"];

  if (!window.uPlot || !data.runs.length || data.brand === null) {
    document.querySelectorAll(".chart, .chart-grid").forEach(function (el) { el.hidden = true; });
    return;
  }
  document.querySelectorAll(".no-chart").forEach(function (el) { el.hidden = true; });

  function pct(v) { return v === null || v === undefined ? "–" : Math.round(v * 100) + " %"; }
  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }
  function widthOf(el) { return Math.max(260, Math.floor(el.getBoundingClientRect().width)); }
  function percentAxis() {
    return { values: function (u, vals) { return vals.map(function (v) { return Math.round(v * 100) + "%"; }); }, size: 52 };
  }
  var dateAxis = { space: 60 };

  function visibilityChart(container, provider) {
    var entry = data.series[provider];
    var values = entry.brands[data.brand];
    if (!values) return;
    var color = COLORS[provider] || "#2456c7";
    var box = document.createElement("figure");
    box.className = "chart-box";
    var caption = document.createElement("figcaption");
    caption.textContent = entry.label;
    box.appendChild(caption);
    container.appendChild(box);
    var opts = {
      width: widthOf(box),
      height: 190,
      scales: { y: { range: [0, 1] } },
      axes: [dateAxis, percentAxis()],
      series: [
        {},
        { label: "Visibility", stroke: color, width: 2, value: function (u, v) { return pct(v); }, points: { size: 5 } },
        { label: "95 % low", stroke: alpha(color, 0.35), width: 1, value: function (u, v) { return pct(v); }, points: { show: false } },
        { label: "95 % high", stroke: alpha(color, 0.35), width: 1, value: function (u, v) { return pct(v); }, points: { show: false } }
      ],
      bands: [{ series: [3, 2], fill: alpha(color, 0.15) }],
      legend: { live: true }
    };
    charts.push({ plot: new uPlot(opts, [data.at, values.v, values.lo, values.hi], box), box: box });
  }

  function shareOfVoiceChart(container) {
    var all = data.series.all;
    if (!all) return;
    var series = [{}];
    var columns = [data.at];
    data.brands.forEach(function (brand, i) {
      var color = BRAND_COLORS[i % BRAND_COLORS.length];
      series.push({
        label: brand.name + (brand.is_own ? " (yours)" : ""),
        stroke: color,
        width: brand.is_own ? 3 : 1.5,
        value: function (u, v) { return pct(v); },
        points: { size: 4 }
      });
      columns.push(all.brands[brand.id].sov);
    });
    // Shares of several brands sit well below 100 %: the scale ends a little above the highest.
    var top = 0;
    columns.slice(1).forEach(function (col) { col.forEach(function (v) { if (v !== null && v > top) top = v; }); });
    var opts = { width: widthOf(container), height: 220, scales: { y: { range: [0, Math.min(1, Math.ceil(top * 10 + 0.5) / 10)] } },
                 axes: [dateAxis, percentAxis()], series: series };
    charts.push({ plot: new uPlot(opts, columns, container), box: container });
  }

  var grid = document.getElementById("visibility-charts");
  if (grid) data.providers.forEach(function (provider) { visibilityChart(grid, provider); });
  var sov = document.getElementById("sov-chart");
  if (sov) shareOfVoiceChart(sov);

  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) cancelAnimationFrame(pending);
    pending = requestAnimationFrame(function () {
      charts.forEach(function (c) {
        c.plot.setSize({ width: widthOf(c.box.parentNode === grid ? c.box : c.box), height: c.plot.height });
      });
    });
  });
})();
