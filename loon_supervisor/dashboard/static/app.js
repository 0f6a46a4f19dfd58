// The dashboard's only script (no build step). Loaded from this server (CSP: no inline).
// Log lines are put into the page with textContent: content is never parsed as markup.
"use strict";

(function () {
  var box = document.getElementById("log");
  if (!box) { return; }
  var services = box.dataset.services.split(",");
  var many = services.length > 1;
  var filter = document.getElementById("filter");
  var pauseBtn = document.getElementById("pause");
  var endBtn = document.getElementById("end");
  var conn = document.getElementById("conn");
  var MAX_LINES = 5000, MAX_HELD = 20000;
  var paused = false, held = [], follow = true;

  function matches(text) {
    var f = filter.value.toLowerCase();
    return !f || text.toLowerCase().indexOf(f) >= 0;
  }

  function add(service, lines) {
    var idx = services.indexOf(service);
    var frag = document.createDocumentFragment();
    for (var i = 0; i < lines.length; i++) {
      var div = document.createElement("div");
      var text = many ? "[" + service + "] " + lines[i] : lines[i];
      div.className = "line s" + (idx % 6) + (matches(text) ? "" : " hidden");
      div.textContent = text;
      frag.appendChild(div);
    }
    box.appendChild(frag);
    while (box.childElementCount > MAX_LINES) { box.removeChild(box.firstElementChild); }
    if (follow) { box.scrollTop = box.scrollHeight; }
  }

  box.addEventListener("scroll", function () {
    follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  });

  filter.addEventListener("input", function () {
    var lines = box.children;
    for (var i = 0; i < lines.length; i++) {
      lines[i].classList.toggle("hidden", !matches(lines[i].textContent));
    }
  });

  pauseBtn.addEventListener("click", function () {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
    if (!paused) {
      var h = held; held = [];
      for (var i = 0; i < h.length; i++) { add(h[i].s, h[i].l); }
    }
  });

  endBtn.addEventListener("click", function () {
    follow = true;
    box.scrollTop = box.scrollHeight;
  });

  var source = new EventSource(box.dataset.stream);
  source.onopen = function () { conn.textContent = "live"; };
  source.onerror = function () { conn.textContent = "reconnecting…"; };
  source.onmessage = function (e) {
    var msg = JSON.parse(e.data);
    if (paused) {
      held.push(msg);
      if (held.length > MAX_HELD) { held.shift(); conn.textContent = "paused (oldest held lines dropped)"; }
      return;
    }
    add(msg.s, msg.l);
  };
})();
