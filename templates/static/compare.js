/* Side-by-side head view of a comparison page: draws one head's attention pattern for trace A and
   trace B and their absolute difference on canvases. Pattern data per layer comes from
   data/compare-layer-{l}.js (a classic script that sets window.__compareLayers[l]), loaded when the
   layer is first shown, so the page works from file:// without fetch(). */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("hv-config").textContent);
  var n = cfg.positions;
  var layers = window.__compareLayers = window.__compareLayers || {};
  var decoded = {};
  var layerSel = document.getElementById("hv-layer");
  var headSel = document.getElementById("hv-head");
  var info = document.getElementById("hv-info");
  var ids = ["hv-a", "hv-b", "hv-diff"];
  var cell = Math.max(1, Math.floor(360 / n));

  function decode(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function withLayer(layer, then) {
    if (layers[layer]) { then(); return; }
    var tag = document.createElement("script");
    tag.src = "data/compare-layer-" + layer + ".js";
    tag.onload = then;
    tag.onerror = function () { info.textContent = "could not load data/compare-layer-" + layer + ".js"; };
    document.head.appendChild(tag);
  }

  function patterns(layer) {
    if (!decoded[layer]) decoded[layer] = { a: decode(layers[layer].a), b: decode(layers[layer].b) };
    return decoded[layer];
  }

  var PAL = window.__vizPalette;  // assets/palette.js: the reports' colours
  function paint(canvas, values, offset, full) {  // sequential scale 0..full (bytes); later keys masked grey
    canvas.width = canvas.height = n * cell;
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = PAL.css(PAL.mask);
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (var q = 0; q < n; q++) {
      for (var k = 0; k <= q; k++) {
        ctx.fillStyle = PAL.css(PAL.colour("sequential", values(offset + q * n + k), 0, full));
        ctx.fillRect(k * cell, q * cell, cell, cell);
      }
    }
  }

  function draw() {
    var layer = +layerSel.value, head = +headSel.value;
    withLayer(layer, function () {
      var p = patterns(layer), offset = head * n * n;
      var diff = function (i) { return Math.abs(p.a[i] - p.b[i]); }, most = 0;
      for (var i = offset; i < offset + n * n; i++) most = Math.max(most, diff(i));
      paint(document.getElementById("hv-a"), function (i) { return p.a[i]; }, offset, 255);
      paint(document.getElementById("hv-b"), function (i) { return p.b[i]; }, offset, 255);
      paint(document.getElementById("hv-diff"), diff, offset, Math.max(most, 1));
      document.getElementById("hv-diff-scale").textContent = (most / 255).toFixed(3);
    });
  }

  function hover(event) {
    var layer = +layerSel.value, head = +headSel.value;
    if (!layers[layer]) return;
    var rect = event.target.getBoundingClientRect();
    var k = Math.floor((event.clientX - rect.left) / cell), q = Math.floor((event.clientY - rect.top) / cell);
    if (q < 0 || q >= n || k < 0 || k > q) { info.textContent = ""; return; }
    var p = patterns(layer), i = head * n * n + q * n + k;
    info.textContent = "L" + layer + ".H" + head + "  query " + q + " " + cfg.tokens_a[q] + (cfg.tokens_b[q] !== cfg.tokens_a[q] ? "/" + cfg.tokens_b[q] : "") +
      "  →  key " + k + " " + cfg.tokens_a[k] + (cfg.tokens_b[k] !== cfg.tokens_a[k] ? "/" + cfg.tokens_b[k] : "") +
      ":  A " + (p.a[i] / 255).toFixed(3) + "  B " + (p.b[i] / 255).toFixed(3) + "  |A−B| " + (Math.abs(p.a[i] - p.b[i]) / 255).toFixed(3);
  }

  layerSel.addEventListener("change", draw);
  headSel.addEventListener("change", draw);
  ids.forEach(function (id) { document.getElementById(id).addEventListener("mousemove", hover); });
  Array.prototype.forEach.call(document.querySelectorAll("td.cell[data-layer]"), function (td) {
    td.style.cursor = "pointer";
    td.addEventListener("click", function () {
      layerSel.value = td.getAttribute("data-layer");
      headSel.value = td.getAttribute("data-head");
      draw();
      document.getElementById("heads").scrollIntoView();
    });
  });
  draw();
})();
