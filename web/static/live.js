// nalgae dashboard: live counts over Server-Sent Events, the composer's live audience count
// and message preview. Plain script, no build step, nothing loaded from elsewhere.
(function () {
  "use strict";
  var fmt = new Intl.NumberFormat(document.documentElement.lang || "ko");

  function show(value) {
    return typeof value === "number" ? fmt.format(value) : (value == null ? "" : String(value));
  }

  function statusNames() {
    var el = document.getElementById("status-names");
    try { return el ? JSON.parse(el.textContent) : {}; } catch (e) { return {}; }
  }

  function apply(el, data) {
    if (el.dataset.html) {
      el.innerHTML = data.html;
      return;
    }
    if (el.dataset.field) {
      el.textContent = show(data[el.dataset.field]);
      return;
    }
    var names = statusNames();
    el.querySelectorAll("[data-field]").forEach(function (f) {
      var v = data[f.dataset.field];
      f.textContent = f.dataset.translate ? (names[v] || v) : show(v);
    });
    var bar = el.querySelector(".progress-bar");
    if (bar && typeof data.percent === "number") {
      bar.style.width = data.percent + "%";
      bar.parentNode.setAttribute("aria-valuenow", data.percent);
    }
    el.dataset.state = data.status || "";
  }

  document.querySelectorAll("[data-live]").forEach(function (el) {
    if (!window.EventSource) return;
    var source = new EventSource(el.dataset.live);
    source.addEventListener("update", function (event) {
      try { apply(el, JSON.parse(event.data)); } catch (e) { /* a malformed event: skip */ }
    });
  });

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.querySelector(button.dataset.copy);
      input.select();
      if (navigator.clipboard) navigator.clipboard.writeText(input.value);
      else document.execCommand("copy");
    });
  });
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  // A select that submits its form on change (no inline handlers: the CSP forbids them).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // --- the broadcast composer ---
  var composer = document.getElementById("composer");
  if (!composer) return;

  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  var audience = document.getElementById("audience");
  function fromBuilder() {
    var parts = [];
    composer.querySelectorAll("[data-key]").forEach(function (sel) {
      var values = Array.prototype.filter.call(sel.options, function (o) { return o.selected && o.value; })
        .map(function (o) { return o.value; });
      if (values.length) parts.push(sel.dataset.key + "=" + values.join("|"));
    });
    audience.value = parts.join(",");
  }
  var countAudience = debounce(function () {
    fetch("/broadcasts/audience-count?audience=" + encodeURIComponent(audience.value),
          {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        document.getElementById("audience-error").textContent = data.error || "";
        document.getElementById("audience-count").textContent = data.error ? "–" : fmt.format(data.count);
        document.getElementById("audience-desc").textContent = data.description ? "(" + data.description + ")" : "";
      });
  }, 250);
  composer.querySelectorAll("[data-key]").forEach(function (sel) {
    sel.addEventListener("change", function () { fromBuilder(); countAudience(); });
  });
  audience.addEventListener("input", countAudience);
  countAudience();

  var buttons = document.getElementById("buttons");
  function renderButtons() {
    var rows = (buttons.value || "").split("\n").filter(function (l) { return l.trim(); });
    composer.querySelectorAll("[data-buttons-preview]").forEach(function (box, i) {
      box.textContent = "";
      rows.forEach(function (line) {
        var label = line.split("|")[0].trim();
        var halves = label.split(" / ");
        var b = document.createElement("span");
        b.className = "tg-button";
        b.textContent = (i === 1 && halves[1]) ? halves[1] : halves[0];
        box.appendChild(b);
      });
    });
  }
  buttons.addEventListener("input", renderButtons);
  renderButtons();

  composer.querySelectorAll("textarea[data-preview]").forEach(function (area) {
    var target = document.querySelector(area.dataset.preview);
    var error = document.getElementById(target.id + "-error");
    var update = debounce(function () {
      fetch("/broadcasts/preview?lang=" + area.dataset.lang + "&text=" + encodeURIComponent(area.value),
            {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (data) {
          target.innerHTML = data.html || "";  // sanitised by the server
          error.textContent = data.error || "";
        });
    }, 250);
    area.addEventListener("input", update);
    if (area.value) update();
  });
})();
