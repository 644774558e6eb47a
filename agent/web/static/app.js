// obsagent dashboard: live status over server-sent events and lazily loaded expanders.
// Plain JavaScript shipped with the package: no build step, nothing fetched from the internet.
(function () {
  "use strict";
  function live() {
    var panel = document.getElementById("live");
    if (!panel || !window.EventSource) return;
    var source = new EventSource(panel.getAttribute("data-live"));
    source.addEventListener("status", function (event) {
      panel.innerHTML = event.data;
      panel.setAttribute("data-updated", String(Date.now()));
    });
  }
  function expanders() {
    document.querySelectorAll("details[data-src]").forEach(function (details) {
      details.addEventListener("toggle", function () {
        if (!details.open || details.getAttribute("data-loaded")) return;
        details.setAttribute("data-loaded", "1");
        var body = details.querySelector(".frames-body");
        fetch(details.getAttribute("data-src"), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
          .then(function (html) { body.innerHTML = html; body.classList.remove("muted"); })
          .catch(function () { body.textContent = "could not load the frames; reload the page"; });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { live(); expanders(); });
})();
