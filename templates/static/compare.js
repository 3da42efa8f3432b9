/* Side-by-side head view of a comparison page: one head's attention pattern for trace A, for trace B
   and their absolute difference, each a zoomable heatmap with position axes (assets/heatmap.js);
   zooming or panning one moves the other two. Pattern data per layer comes from
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
  var PAL = window.__vizPalette;  // assets/palette.js: the reports' colours

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
  /* a position's token; "A / B" where the two probes differ */
  function label(i) { return cfg.tokens_b[i] !== cfg.tokens_a[i] ? cfg.tokens_a[i] + " / " + cfg.tokens_b[i] : cfg.tokens_a[i]; }

  var current = { layer: 0, head: 0, p: null, offset: 0 };
  function byteA(i) { return current.p.a[i]; }
  function byteB(i) { return current.p.b[i]; }
  function byteDiff(i) { return Math.abs(current.p.a[i] - current.p.b[i]); }
  function filler(get) {  /* heatmap.js fill(): the largest byte of each block, as 0..255 */
    return function (qa, ka, mq, mk, b, S, out) {
      if (!current.p) return;
      for (var q = qa; q < qa + mq; q++) {
        var row = Math.floor((q - qa) / b) * S, base = current.offset + q * n;
        for (var k = ka; k < ka + mk; k++) {
          var v = get(base + k), idx = row + Math.floor((k - ka) / b);
          if (v > out[idx]) out[idx] = v;
        }
      }
    };
  }
  function describe(q, k) {
    var i = current.offset + q * n + k, p = current.p;
    return "L" + current.layer + ".H" + current.head + "  query " + q + " " + label(q) + "  →  key " + k + " " + label(k) +
      ":  A " + (p.a[i] / 255).toFixed(3) + "  B " + (p.b[i] / 255).toFixed(3) + "  |A−B| " + (Math.abs(p.a[i] - p.b[i]) / 255).toFixed(3);
  }
  function tip(which) {
    return function (q, k, block) {
      if (!current.p) return ["loading…"];
      var i = current.offset + q * n + k, p = current.p;
      info.textContent = describe(q, k);
      var lines = [which + ": L" + current.layer + ".H" + current.head, "query " + q + " · " + label(q), "key " + k + " · " + label(k)];
      if (k > q) lines.push("a later position (masked)");
      else lines.push("A " + (p.a[i] / 255).toFixed(3) + "   B " + (p.b[i] / 255).toFixed(3) + "   |A−B| " + (Math.abs(p.a[i] - p.b[i]) / 255).toFixed(3));
      if (block) lines.push("this cell: queries " + block.q0 + "–" + block.q1 + " × keys " + block.k0 + "–" + block.k1 +
                            ", largest " + (block.value / 255).toFixed(3));
      return lines;
    };
  }

  var maps = [], most = 1;
  function colourTo(full) { return function (v) { return PAL.colour("sequential", v, 0, full()); }; }
  var specs = [
    { id: "hv-a", get: byteA, full: function () { return 255; }, name: "A" },
    { id: "hv-b", get: byteB, full: function () { return 255; }, name: "B" },
    { id: "hv-diff", get: byteDiff, full: function () { return Math.max(most, 1); }, name: "|A − B|" }
  ];
  specs.forEach(function (spec, m) {
    var canvas = document.getElementById(spec.id);
    canvas.setAttribute("aria-label", spec.name + ": attention pattern, query position down, key position across");
    maps.push(window.VizHeatmap(canvas, {
      n: n, label: label, causal: true, mask: PAL.mask, fill: filler(spec.get), colour: colourTo(spec.full),
      tip: tip(spec.name),
      onview: function (view) { maps.forEach(function (other, o) { if (o !== m) other.setView(view, true); }); }
    }));
    canvas.addEventListener("pointerleave", function () { info.textContent = ""; });
  });

  function draw() {
    var layer = +layerSel.value, head = +headSel.value;
    withLayer(layer, function () {
      current = { layer: layer, head: head, p: patterns(layer), offset: head * n * n };
      most = 0;
      for (var i = current.offset; i < current.offset + n * n; i++) most = Math.max(most, byteDiff(i));
      maps.forEach(function (m) { m.draw(); });
      document.getElementById("hv-diff-scale").textContent = (most / 255).toFixed(3);
    });
  }

  layerSel.addEventListener("change", draw);
  headSel.addEventListener("change", draw);
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
