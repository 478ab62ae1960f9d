// qualflow UI behaviour that htmx attributes do not cover. No build step, no dependencies.
(function () {
  "use strict";

  // Forms with data-confirm ask before submitting (delete, cancel, replay).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Toggle field groups by a radio/select value: <div data-show-when="name=value">.
  function syncConditional(root) {
    root.querySelectorAll("[data-show-when]").forEach(function (el) {
      var rule = el.getAttribute("data-show-when").split("=");
      var form = el.closest("form");
      if (!form) return;
      var checked = form.querySelector('[name="' + rule[0] + '"]:checked') ||
        form.querySelector('select[name="' + rule[0] + '"]');
      var visible = checked && rule[1].split("|").indexOf(checked.value) !== -1;
      el.hidden = !visible;
      el.querySelectorAll("input, select, textarea").forEach(function (input) {
        input.disabled = !visible;
      });
    });
  }
  document.addEventListener("change", function () { syncConditional(document); });

  // Automation editor: move a step up or down, or remove it. The order of the hidden "step"
  // inputs in the form is the order of the steps.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-step-move]");
    if (!button) return;
    var item = button.closest("[data-step-uid]");
    if (!item) return;
    var how = button.getAttribute("data-step-move");
    if (how === "up" && item.previousElementSibling) {
      item.parentNode.insertBefore(item, item.previousElementSibling);
    } else if (how === "down" && item.nextElementSibling) {
      item.parentNode.insertBefore(item.nextElementSibling, item);
    } else if (how === "remove") {
      item.remove();
    }
  });
  document.addEventListener("DOMContentLoaded", function () { syncConditional(document); });
  document.addEventListener("htmx:afterSettle", function () { syncConditional(document); });
})();
