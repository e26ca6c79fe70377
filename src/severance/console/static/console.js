// Severance console: small progressive enhancements. Every page works without this file.
"use strict";

// An override's remaining time, counted down in the header; reload when it runs out, so the
// server (which refuses the expired session) shows what happened. It counts from the seconds
// left by the server's clock, not from the expiry time read on this device's clock: a device
// whose clock is ahead would show "expired" at once and reload in a loop.
function startCountdowns() {
  document.querySelectorAll("[data-seconds-left]").forEach(function (el) {
    var seconds = parseFloat(el.getAttribute("data-seconds-left"));
    if (isNaN(seconds)) return;
    var start = performance.now();
    function tick() {
      var left = Math.max(0, Math.round(seconds - (performance.now() - start) / 1000));
      var m = Math.floor(left / 60), s = left % 60;
      el.textContent = left > 0 ? m + ":" + (s < 10 ? "0" : "") + s + " left" : "expired";
      el.setAttribute("aria-label", left > 0 ? m + " minutes " + s + " seconds left" : "expired");
      if (left <= 0) {
        clearInterval(timer);
        window.location.reload();
      }
    }
    var timer = setInterval(tick, 1000);
    tick();
  });
}

// Clean slate: the erase button stays disabled until the persona's name is typed exactly
// (the server checks it again).
function guardConfirmations() {
  document.querySelectorAll("form.confirm-name").forEach(function (form) {
    var name = form.getAttribute("data-name");
    var input = form.querySelector("input[name=confirm]");
    var button = form.querySelector("button[type=submit]");
    function update() { button.disabled = input.value !== name; }
    input.addEventListener("input", update);
    update();
  });
}

// Reintegration review: tick all / none, and how many are ticked.
function reviewToggles() {
  var form = document.querySelector("form.review");
  if (!form) return;
  var boxes = form.querySelectorAll("input[name=include]");
  var counter = document.getElementById("ticked-count");
  function count() {
    var n = 0;
    boxes.forEach(function (b) { if (b.checked) n++; });
    if (counter) counter.textContent = n + " of " + boxes.length + " ticked";
  }
  form.querySelectorAll("button[data-check]").forEach(function (button) {
    button.addEventListener("click", function () {
      var on = button.getAttribute("data-check") === "all";
      boxes.forEach(function (b) { b.checked = on; });
      count();
    });
  });
  boxes.forEach(function (b) { b.addEventListener("change", count); });
  count();
}

document.addEventListener("DOMContentLoaded", function () {
  startCountdowns();
  guardConfirmations();
  reviewToggles();
});
