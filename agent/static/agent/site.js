/* Every page: a form's submit button is disabled once the form is sent, so a double click on
   "Run now" or "Re-run" never starts two groups. */
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.submitted) { event.preventDefault(); return; }
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
