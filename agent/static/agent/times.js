/* Times in the viewer's own time zone. The server writes every time as
   <time datetime="2026-11-25T06:00:03Z" data-format="datetime|relative|both">2026-11-25 06:00:03 UTC</time>;
   this script rewrites the text in the browser's zone and locale and keeps relative times
   ("3 min ago") fresh. Without JavaScript the UTC text stays, which is still correct. */
(function () {
  "use strict";
  if (!window.Intl || !Intl.DateTimeFormat) return;

  var absolute = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
  });
  var zone = (Intl.DateTimeFormat().resolvedOptions().timeZone || "").replace(/_/g, " ");
  var relative = Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  var STEPS = [["second", 60], ["minute", 60], ["hour", 24], ["day", 7], ["week", 4.35], ["month", 12], ["year", Infinity]];

  function ago(date) {
    if (!relative) return "";
    var value = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(value) < 10) return "just now";
    for (var i = 0; i < STEPS.length; i += 1) {
      if (Math.abs(value) < STEPS[i][1]) return relative.format(Math.round(value), STEPS[i][0]);
      value /= STEPS[i][1];
    }
    return "";
  }

  function render(element) {
    var date = new Date(element.getAttribute("datetime"));
    if (isNaN(date.getTime())) return;
    var format = element.dataset.format || "both";
    var exact = absolute.format(date);
    var text = format === "relative" ? ago(date) : format === "datetime" ? exact : exact + " (" + ago(date) + ")";
    if (element.textContent !== text) element.textContent = text;
    element.title = exact + (zone ? " " + zone : "");
  }

  function renderAll() {
    document.querySelectorAll("time[datetime]").forEach(render);
  }

  window.OneGlanseTimes = { render: render, renderAll: renderAll };
  renderAll();
  setInterval(renderAll, 30000);
})();
