/* The sweep page's layer x head grid: pick a figure, scrub through the steps (data/sweep.js). */
(function () {
  var data = window.__sweep, P = window.__vizPalette;
  var select = document.getElementById("sweep-metric"), slider = document.getElementById("sweep-step");
  var label = document.getElementById("sweep-step-label"), table = document.getElementById("sweep-grid");
  if (!data || !P || !select || !slider || !table) { return; }

  function range(metric) {
    var lo = Infinity, hi = -Infinity;
    data.metrics[metric].forEach(function (grid) {
      (grid || []).forEach(function (row) { row.forEach(function (v) {
        if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      }); });
    });
    return isFinite(lo) ? [lo, hi > lo ? hi : lo + 1] : [0, 1];
  }

  function draw() {
    var metric = select.value, i = Number(slider.value), grid = data.metrics[metric][i], lim = range(metric);
    label.textContent = "step " + data.steps[i];
    while (table.firstChild) { table.removeChild(table.firstChild); }
    if (!grid) { return; }
    var head = table.insertRow();
    head.appendChild(document.createElement("th"));
    grid[0].forEach(function (_, h) { var th = document.createElement("th"); th.textContent = "head " + h; head.appendChild(th); });
    grid.forEach(function (row, layer) {
      var tr = table.insertRow(), th = document.createElement("th");
      th.textContent = "layer " + layer; tr.appendChild(th);
      row.forEach(function (v) {
        var td = tr.insertCell();
        td.textContent = v === null ? "–" : v.toFixed(3);
        if (v !== null) {
          td.style.background = P.css(P.colour("sequential", v, lim[0], lim[1]));
          td.style.color = P.ink("sequential", v, lim[0], lim[1]);
        }
      });
    });
  }
  select.addEventListener("change", draw);
  slider.addEventListener("input", draw);
  draw();
})();
