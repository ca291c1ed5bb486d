/* Every page: a form's submit button is disabled once the form is sent, so a double click on
   "Run now" or "Re-run" never starts two runs; a form with data-confirm asks first (Cancel, and
   runs of many live provider calls); long answers fold to a few lines with a "Show all" button.
   No inline handlers anywhere: the pages run under a strict Content-Security-Policy. */
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.submitted) { event.preventDefault(); return; }
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
  form.dataset.submitted = "true";
  form.querySelectorAll("button[type=submit]").forEach(function (button) { button.setAttribute("aria-disabled", "true"); });
});
// Coming back through the history shows the page as it was left: make its forms usable again.
window.addEventListener("pageshow", function () {
  document.querySelectorAll("form[data-submitted]").forEach(function (form) {
    delete form.dataset.submitted;
    form.querySelectorAll("button[aria-disabled]").forEach(function (button) { button.removeAttribute("aria-disabled"); });
  });
});

(function () {
  "use strict";
  var FOLDED_PX = 150;

  function fold(text) {
    if (text.dataset.foldable || text.scrollHeight <= FOLDED_PX * 1.4) return;
    text.dataset.foldable = "true";
    text.classList.add("folded");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button-link fold-toggle";
    button.setAttribute("aria-expanded", "false");
    button.textContent = "Show all";
    button.addEventListener("click", function () {
      var folded = text.classList.toggle("folded");
      button.setAttribute("aria-expanded", String(!folded));
      button.textContent = folded ? "Show all" : "Show less";
    });
    text.insertAdjacentElement("afterend", button);
  }

  function foldAll() { document.querySelectorAll(".answer-text").forEach(fold); }
  window.OneGlanseFold = foldAll;
  foldAll();
  // Answers that arrive live are folded as they come in.
  var answers = document.getElementById("answers");
  if (answers && window.MutationObserver) new MutationObserver(foldAll).observe(answers, { childList: true, subtree: true });
})();
