/* visualizer report: interactive views drawn in the browser from the compact data files.
 *
 * Classic script, no dependencies, works from file://: a section's data file (data/*.js, which
 * sets window.__vizLayers[l] or window.__vizData[name]) is loaded by adding a <script> tag when
 * the section's <details> opens. Every text from the model or the probe is set with textContent
 * (never innerHTML), so tokens such as "<script>" show as text.
 *
 * Views: the model view (every layer x head as a max-pooled tile, a strip of tokens); per layer a head selector, a head view (tokens in two
 * columns, a line per query and key with opacity = weight and width proportional to it; hover or
 * click a token), the selected head's pattern as a zoomable heatmap with position axes and a
 * tooltip (assets/heatmap.js), the logit lens after the layer (table + word map), the most active
 * MLP neurons, the residual-stream norms; the logit-lens grid (embed and layer x position, row
 * labels and column heads sticky); the nearest vocabulary neighbours; the next-token candidates at
 * every position; the neuron pages (each top neuron's promoted and suppressed tokens, its activation
 * along the probe and where it fires most); the choose view (any position's next tokens, a target A
 * or a pair A - B, its logit breakdown by component and head, its input attribution); a hovered token (token list, model view strip, head view, lens column) is the
 * page's focus: its row and column are marked in every tile, pattern heatmap and head view; the head-types table (sorted on a header's click, a row opens its head).
 *
 * Colours come from assets/palette.js (window.__vizPalette, written from the same tables as the
 * PNGs): attention weights and probabilities on the sequential scale, signed values (neuron
 * activations) on the diverging scale, grey for attention a query may not pay.
 */
(function () {
  "use strict";

  var page = JSON.parse(document.getElementById("viz-page").textContent);
  var timing = window.__vizTiming = {};  /* milliseconds per step, for the page tests' timing report */
  var T = page.T;
  window.__vizLayers = window.__vizLayers || {};
  window.__vizData = window.__vizData || {};

  /* ---------- small helpers ---------- */

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(x, d) { return Number(x).toFixed(d === undefined ? 4 : d); }
  function clamp(x, a, b) { return x < a ? a : (x > b ? b : x); }
  function short(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + "…" : s; }
  function tokenLabel(i) { return page.tokens[i]; }

  function bytes(b64) {
    var bin = atob(b64), n = bin.length, out = new Uint8Array(n);
    for (var i = 0; i < n; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function uint16(b64) {
    var b = bytes(b64), n = b.length >> 1, out = new Uint16Array(n);
    for (var i = 0; i < n; i++) out[i] = b[2 * i] | (b[2 * i + 1] << 8);
    return out;
  }

  /* Colour scales: the palette the PNGs use (assets/palette.js) */
  var PAL = window.__vizPalette;
  function seq(p) { return PAL.sequential(p); }
  function rgb(c) { return PAL.css(c); }
  function inkFor(p) { return PAL.ink("sequential", p, 0, 1); }
  /* causal attention: pooled cells wholly above the diagonal are masked (grey, as in the PNGs) */
  var CAUSAL = !!(page.encoding && (page.encoding.triangle || page.encoding.causal));
  function causalMask(S, first) {  /* first(b): the first position of block b, for b = 0..S */
    if (!CAUSAL) return null;
    return function (b, c) { return first(c) > first(b + 1) - 1; };
  }

  /* ---------- loading data files ---------- */

  var scripts = {};
  function loadScript(src, done) {
    var s = scripts[src];
    if (s && s.loaded) { done(); return; }
    if (s) { s.waiting.push(done); return; }
    s = scripts[src] = { loaded: false, waiting: [done] };
    var tag = document.createElement("script");
    tag.src = src;
    tag.onload = function () { s.loaded = true; var w = s.waiting; s.waiting = []; w.forEach(function (f) { f(); }); };
    tag.onerror = function () { s.failed = true; };
    document.body.appendChild(tag);
  }
  function need(list, done) {
    var left = list.length;
    if (!left) { done(); return; }
    list.forEach(function (src) { loadScript(src, function () { if (--left === 0) done(); }); });
  }

  /* ---------- tooltip ---------- */

  var tip = el("div", "viz-tip");
  tip.hidden = true;
  document.body.appendChild(tip);
  function showTip(ev, lines) {
    tip.textContent = "";
    lines.forEach(function (line, i) { tip.appendChild(el(i === 0 ? "strong" : "div", null, line)); });
    tip.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth - 8) x = ev.clientX - r.width - 14;
    if (y + r.height > window.innerHeight - 8) y = ev.clientY - r.height - 14;
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  function hideTip() { tip.hidden = true; }

  /* ---------- attention: decode to rows (CSR) ---------- */

  function decodeHead(enc, h) {
    var start = new Int32Array(T + 1), keys, w, rest = null, i, j, n;
    if (enc.encoding === "uint8") {
      var b = bytes(enc.heads[h]);
      w = new Float32Array(b.length);
      keys = new Int32Array(b.length);
      n = 0;
      for (i = 0; i < T; i++) {
        start[i] = n;
        var m = enc.triangle ? i + 1 : T;
        for (j = 0; j < m; j++) { keys[n] = j; w[n] = b[n] / 255; n++; }
      }
      start[T] = n;
    } else {
      var head = enc.heads[h], kb = uint16(head.keys), wb = bytes(head.weights), rb = bytes(head.rest);
      keys = new Int32Array(kb.length);
      w = new Float32Array(wb.length);
      rest = new Float32Array(T);
      n = 0;
      for (i = 0; i < T; i++) {
        start[i] = n;
        var c = enc.causal ? Math.min(enc.k, i + 1) : enc.k;
        for (j = 0; j < c; j++) { keys[n] = kb[n]; w[n] = wb[n] / 255; n++; }
        rest[i] = rb[i] / 255;
      }
      start[T] = n;
    }
    return { start: start, keys: keys, w: w, rest: rest };
  }

  function weightAt(att, i, j) {
    for (var n = att.start[i]; n < att.start[i + 1]; n++) if (att.keys[n] === j) return att.w[n];
    return 0;
  }

  /* S x S cells, each the largest weight among the positions it covers (S <= T) */
  function pooled(att, S) {
    var out = new Float32Array(S * S);
    for (var i = 0; i < T; i++) {
      var bi = Math.floor(i * S / T);
      for (var n = att.start[i]; n < att.start[i + 1]; n++) {
        var idx = bi * S + Math.floor(att.keys[n] * S / T);
        if (att.w[n] > out[idx]) out[idx] = att.w[n];
      }
    }
    return out;
  }
  function maxOf(a) { var m = 0; for (var i = 0; i < a.length; i++) if (a[i] > m) m = a[i]; return m; }

  /* Colour scale of every attention picture, chosen by the reader (all views follow): linear and
     square root map 0..1 the same way for every head; "head" stretches 0..each head's own max. */
  var MODES = {
    linear: "sequential, linear: white = 0 to dark blue = 1, the same for every head",
    sqrt: "sequential, square root: white = 0 to dark blue = 1 (small weights made visible), the same for every head",
    head: "sequential, linear from 0 to each picture's own largest weight (pictures are NOT comparable)"
  };
  var colourMode = "linear", redraws = [];
  function tone(w, max) {
    if (colourMode === "sqrt") return Math.sqrt(w);
    if (colourMode === "head") return max > 0 ? w / max : 0;
    return w;
  }
  function setMode(mode) {
    colourMode = mode;
    Array.prototype.forEach.call(document.querySelectorAll("select.colour-mode"), function (s) { s.value = mode; });
    Array.prototype.forEach.call(document.querySelectorAll(".mode-text"), function (e) { e.textContent = MODES[mode]; });
    redraws.forEach(function (f) { f(); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("select.colour-mode"), function (s) {
    s.addEventListener("change", function () { setMode(s.value); });
  });
  setMode(colourMode);

  function paintCells(canvas, S, cells, masked) {
    var max = maxOf(cells);
    canvas.width = S;
    canvas.height = S;
    var ctx = canvas.getContext("2d"), img = ctx.createImageData(S, S);
    for (var k = 0; k < S * S; k++) {
      var c = masked && masked(Math.floor(k / S), k % S) ? PAL.mask : seq(tone(cells[k], max));
      img.data[4 * k] = c[0]; img.data[4 * k + 1] = c[1]; img.data[4 * k + 2] = c[2]; img.data[4 * k + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  /* ---------- heatmap of one head's pattern (assets/heatmap.js: position axes, zoom, crosshair) ---------- */

  /* fill(qa, ka, mq, mk, b, S, out) for heatmap.js: the largest weight of each b x b block */
  function fillFrom(att) {
    return function (qa, ka, mq, mk, b, S, out) {
      for (var i = qa; i < qa + mq; i++) {
        var row = Math.floor((i - qa) / b) * S;
        for (var n = att.start[i]; n < att.start[i + 1]; n++) {
          var j = att.keys[n] - ka;
          if (j < 0 || j >= mk) continue;
          var idx = row + Math.floor(j / b);
          if (att.w[n] > out[idx]) out[idx] = att.w[n];
        }
      }
    };
  }

  function heatmapOptions(state) {
    var h = state.head, att = state.att[h], max = maxOf(att.w);
    var title = "blocks." + state.layer + ".attn.hook_pattern [head " + h + "]";
    return {
      fill: fillFrom(att),
      colour: function (v) { return seq(tone(v, max)); },
      tip: function (q, k, block) {
        var lines = [title, "query " + q + " · " + tokenLabel(q), "key " + k + " · " + tokenLabel(k)];
        if (k > q && CAUSAL) lines.push("weight 0: a later position (masked)");
        else lines.push("weight ≈" + fmt(weightAt(att, q, k), 3) + " (8-bit data: ±0.002)");
        if (block) lines.push("this cell: queries " + block.q0 + "–" + block.q1 + " × keys " + block.k0 + "–" + block.k1 +
                              ", largest weight ≈" + fmt(block.value, 3));
        if (att.rest) lines.push("rest of query " + q + "'s row (keys not stored): ≈" + fmt(att.rest[q], 3));
        return lines;
      }
    };
  }

  function makeHeatmap(state) {
    var canvas = state.section.querySelector(".heatmap"), o = heatmapOptions(state);
    o.n = T;
    o.label = tokenLabel;
    o.causal = CAUSAL;
    o.mask = PAL.mask;
    canvas.setAttribute("aria-label", "attention pattern of layer " + state.layer + ": query position down, key position across");
    return window.VizHeatmap(canvas, o);
  }

  /* ---------- head view: tokens in two columns, lines weighted by attention ---------- */

  var ROW = Math.max(6, Math.min(18, Math.floor(32000 / Math.max(T, 1))));
  var HV_WIDTH = 150, HV_HEIGHT = 560;  /* the lines' column; the scrolling box's height (style.css .hv-scroll) */
  var HEAD_COLOURS = ["#2456c7", "#c0392b", "#1b7a3a", "#8e44ad", "#d35400", "#16a085", "#7f6000", "#c2185b"];

  function buildHeadView(box, state) {
    box.textContent = "";
    var left = el("div", "hv-col hv-left"), right = el("div", "hv-col hv-right"), canvas = el("canvas", "hv-lines");
    var ql = [], kl = [];
    for (var i = 0; i < T; i++) {
      var a = el("div", "hv-tok", tokenLabel(i)), b = el("div", "hv-tok", tokenLabel(i));
      a.setAttribute("data-pos", i); b.setAttribute("data-pos", i);
      a.title = "position " + i + " as a query: what it attends to";
      b.title = "position " + i + " as a key: what attends to it";
      ql.push(a); kl.push(b);
      left.appendChild(a); right.appendChild(b);
    }
    box.style.setProperty("--row", ROW + "px");  /* every token exactly one row, whatever its font */
    left.style.height = right.style.height = (T * ROW) + "px";
    box.appendChild(left); box.appendChild(canvas); box.appendChild(right);
    var info = state.section.querySelector(".hv-info");
    var hv = { box: box, canvas: canvas, ql: ql, kl: kl, info: info, focus: null, pinned: false, marked: [],
               legend: state.section.querySelector(".hv-legend"), scroll: box.parentNode, queued: false };
    /* the lines canvas is only as tall as the scrolling box and stays in view (sticky): it draws
       the band of lines crossing what is shown, again after each scroll (a canvas as tall as a long
       input took seconds to paint) */
    var dpr = window.devicePixelRatio || 1, tall = Math.min(T * ROW, hv.scroll.clientHeight || HV_HEIGHT);
    canvas.width = Math.round(HV_WIDTH * dpr);
    canvas.height = Math.round(tall * dpr);
    canvas.style.width = HV_WIDTH + "px";
    canvas.style.height = tall + "px";
    hv.dpr = dpr;
    hv.scroll.addEventListener("scroll", function () {
      if (hv.queued) return;
      hv.queued = true;
      requestAnimationFrame(function () { hv.queued = false; strokeLines(hv); });
    });

    function focusFrom(ev) {
      var t = ev.target;
      if (!t.classList || !t.classList.contains("hv-tok")) return null;
      return { side: t.parentNode === left ? "q" : "k", pos: +t.getAttribute("data-pos") };
    }
    box.addEventListener("mouseover", function (ev) {
      if (hv.pinned) return;
      var f = focusFrom(ev);
      if (f) setFocus(state, f);
    });
    box.addEventListener("mouseleave", function () { if (!hv.pinned) setFocus(state, null); });
    box.addEventListener("click", function (ev) {
      var f = focusFrom(ev);
      if (!f) return;
      if (hv.pinned && hv.focus && hv.focus.side === f.side && hv.focus.pos === f.pos) { hv.pinned = false; setFocus(state, null); return; }
      hv.pinned = true;
      setFocus(state, f);
    });
    state.hv = hv;
  }

  /* A head-view line's style from its weight t in 0..1 (after the colour scale chosen: linear = the
     weight itself): opacity = t and width proportional to t, both zero at zero, as bertviz's head
     view sets opacity to the weight. Weights are bytes (1/255 steps), so lines are batched by byte. */
  var LINE_MAX_PX = 6;
  function lineStyle(t) { return { opacity: t, width: LINE_MAX_PX * t }; }
  var LINE_TEXT = {
    linear: "Lines: opacity = the weight and width proportional to it (" + LINE_MAX_PX + " px at 1); a weight of 0 draws nothing.",
    sqrt: "Lines: opacity = √weight and width proportional to √weight (" + LINE_MAX_PX + " px at 1); a weight of 0 draws nothing.",
    head: "Lines: opacity = weight ÷ the head's largest weight and width proportional to it; a weight of 0 draws nothing."
  };

  function drawLines(state) {
    var hv = state.hv, att = state.att[state.head];
    var f = hv.focus, buckets = [], i, n, j, hmax = maxOf(att.w);
    var lines = { q: [], k: [], w: [], level: [] };  /* every line of the view, drawn or not (weight 0) */
    for (i = 0; i < T; i++) {
      if (f && f.side === "q" && f.pos !== i) continue;
      for (n = att.start[i]; n < att.start[i + 1]; n++) {
        j = att.keys[n];
        if (f && f.side === "k" && f.pos !== j) continue;
        var level = Math.round(clamp(tone(att.w[n], hmax), 0, 1) * 255);
        lines.q.push(i); lines.k.push(j); lines.w.push(att.w[n]); lines.level.push(level);
        if (level > 0) (buckets[level] = buckets[level] || []).push(i, j);
      }
    }
    hv.lines = lines;
    hv.buckets = buckets;
    hv.colour = HEAD_COLOURS[state.head % HEAD_COLOURS.length];
    hv.legend.textContent = LINE_TEXT[colourMode];
    strokeLines(hv);
  }

  /* the lines crossing the shown band of rows, one stroke per weight byte */
  function strokeLines(hv) {
    var canvas = hv.canvas, ctx = canvas.getContext("2d"), H = canvas.height / hv.dpr;
    var top = canvas.getBoundingClientRect().top - hv.box.getBoundingClientRect().top;  /* the band, in rows' pixels */
    ctx.setTransform(hv.dpr, 0, 0, hv.dpr, 0, 0);
    ctx.clearRect(0, 0, HV_WIDTH, H);
    ctx.strokeStyle = hv.colour;
    for (var b = 1; b < hv.buckets.length; b++) {
      var pairs = hv.buckets[b];
      if (!pairs) continue;
      var style = lineStyle(b / 255);
      ctx.globalAlpha = style.opacity;
      ctx.lineWidth = style.width;
      ctx.beginPath();
      for (var p = 0; p < pairs.length; p += 2) {
        var y1 = (pairs[p] + 0.5) * ROW - top, y2 = (pairs[p + 1] + 0.5) * ROW - top;
        if (Math.max(y1, y2) < 0 || Math.min(y1, y2) > H) continue;
        ctx.moveTo(0, y1);
        ctx.lineTo(HV_WIDTH, y2);
      }
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    canvas.setAttribute("data-top", Math.round(top));
    canvas.setAttribute("data-drawn", "1");
  }

  window.__vizLineStyle = lineStyle;  /* for the page tests */
  /* the head view's lines of layer l as drawn now: [{q, k, weight, opacity, width}] (page tests) */
  window.__vizHeadLines = function (l) {
    var d = layers[l] && layers[l].hv.lines;
    if (!d) return [];
    return d.q.map(function (q, i) {
      var style = lineStyle(d.level[i] / 255);
      return { q: q, k: d.k[i], weight: d.w[i], opacity: style.opacity, width: style.width };
    });
  };

  function setFocus(state, f) {
    var hv = state.hv, att = state.att[state.head];
    hv.focus = f;
    hv.marked.forEach(function (e) { e.style.background = ""; e.style.color = ""; e.classList.remove("hv-focus"); });
    hv.marked = [];
    var hmax = maxOf(att.w);
    function mark(e, w) {
      var t = tone(w, hmax);
      e.style.background = rgb(seq(t));
      e.style.color = inkFor(t);
      hv.marked.push(e);
    }
    var msg;
    if (f && f.side === "q") {
      hv.ql[f.pos].classList.add("hv-focus"); hv.marked.push(hv.ql[f.pos]);
      var top = [];
      for (var n = att.start[f.pos]; n < att.start[f.pos + 1]; n++) {
        mark(hv.kl[att.keys[n]], att.w[n]);
        top.push([att.w[n], att.keys[n]]);
      }
      top.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
      msg = "Query " + f.pos + " " + tokenLabel(f.pos) + " attends to (largest weights, 8-bit data: ±0.002):\n" +
        top.slice(0, 5).map(function (t) { return tokenLabel(t[1]) + " (pos " + t[1] + ") ≈" + fmt(t[0], 3); }).join(" · ") +
        (att.rest ? "\nrest of the row (keys not stored) ≈" + fmt(att.rest[f.pos], 3) : "");
    } else if (f && f.side === "k") {
      hv.kl[f.pos].classList.add("hv-focus"); hv.marked.push(hv.kl[f.pos]);
      var count = 0;
      for (var i = 0; i < T; i++) {
        var w = weightAt(att, i, f.pos);
        if (w > 0) { mark(hv.ql[i], w); count++; }
      }
      msg = "Key " + f.pos + " " + tokenLabel(f.pos) + " is read by " + count + " position(s) with weight above 0 (shaded on the left).";
    } else {
      msg = "Hover or click a token: left column = the query (what it attends to), right column = the key (what attends to it).";
    }
    hv.info.textContent = msg + (hv.pinned ? "\n(pinned: click it again to release)" : "");
    hv.box.setAttribute("data-focus", f ? f.side + ":" + f.pos : "");
    drawLines(state);
    if (f) setFocusPos(f.pos);  /* the hovered token, marked in the other views too */
  }

  /* ---------- one layer ---------- */

  var layers = {}, pendingHeads = {};

  function timed(name, f) {
    var t0 = performance.now();
    f();
    timing[name] = Math.round(performance.now() - t0);
  }

  function initLayer(section, l) {
    var data = window.__vizLayers[l], enc = data.attention, H = enc.heads.length;
    var t0 = performance.now();
    var state = { layer: l, head: 0, att: [], section: section, minis: [] };
    for (var h = 0; h < H; h++) state.att.push(decodeHead(enc, h));
    layers[l] = state;
    timing["layer" + l + ".decode"] = Math.round(performance.now() - t0);

    /* head selector: one button per head with a small picture of its pattern */
    var heads = section.querySelector(".heads");
    heads.textContent = "";
    state.buttons = [];
    for (h = 0; h < H; h++) {
      var btn = el("button", "head-btn");
      btn.type = "button";
      btn.setAttribute("data-head", h);
      var c = document.createElement("canvas");
      btn.appendChild(c);
      btn.appendChild(el("span", null, "H" + h));
      state.minis.push(c);
      btn.onclick = (function (hh) { return function () { selectHead(state, hh); }; })(h);
      heads.appendChild(btn);
      state.buttons.push(btn);
    }
    timing["layer" + l + ".heads"] = Math.round(performance.now() - t0);
    timed("layer" + l + ".minis", function () { paintMinis(state); });
    timed("layer" + l + ".headview", function () { buildHeadView(section.querySelector(".hv"), state); });
    state.head = pendingHeads[l] !== undefined ? pendingHeads[l] : 0;
    timed("layer" + l + ".heatmap", function () { state.heatmap = makeHeatmap(state); });
    timed("layer" + l + ".select", function () { selectHead(state, state.head); });
    var crossQ = markList(state.hv.ql, "hv-cross"), crossK = markList(state.hv.kl, "hv-cross");
    onFocus(function (pos) { state.heatmap.mark(pos); crossQ(pos); crossK(pos); });
    redraws.push(function () { paintMinis(state); selectHead(state, state.head); });
    delete pendingHeads[l];
    timed("layer" + l + ".lensmap", function () { drawLensMap(section.querySelector(".lens-map"), l); });
    lazy(section, "lens", function () { drawLens(section.querySelector(".lens-view"), l); });
    lazy(section, "neurons", function () { drawNeurons(section.querySelector(".neurons-view"), data.neurons); });
    timed("layer" + l + ".norms", function () { drawNorms(section.querySelector(".norms-view"), data.norms); });
    section.setAttribute("data-ready", "1");
  }

  /* per-position tables of a layer: drawn when their own <details> first opens (long inputs) */
  function lazy(section, name, draw) {
    var box = section.querySelector("details.lazy[data-draw='" + name + "']");
    if (!box) return;
    function once() {
      if (!box.open || box.getAttribute("data-state")) return;
      timed(section.id + "." + name, draw);
      box.setAttribute("data-state", "ready");
    }
    box.addEventListener("toggle", once);
    once();
  }

  function paintMinis(state) {
    var S = Math.min(T, 32);
    var masked = causalMask(S, function (b) { return Math.ceil(b * T / S); });
    state.minis.forEach(function (c, h) { paintCells(c, S, pooled(state.att[h], S), masked); });
  }

  function selectHead(state, h) {
    state.head = h;
    state.buttons.forEach(function (b, i) { b.setAttribute("aria-pressed", i === h ? "true" : "false"); });
    var name = "blocks." + state.layer + ".attn.hook_pattern";
    var canvas = state.section.querySelector(".heatmap");
    state.heatmap.update(heatmapOptions(state));
    state.section.querySelector(".heatmap-title").textContent = "Pattern of head " + h + ": " + name + "[" + h + "], shape [" + T + ", " + T + "] (query × key)";
    var save = state.section.querySelector(".save-png");
    save.setAttribute("download", name + ".head" + h + ".png");
    save.onclick = function () { save.href = canvas.toDataURL("image/png"); };
    setFocus(state, state.hv.pinned ? state.hv.focus : null);
  }

  /* ---------- logit lens after one layer: table + word map ---------- */

  function lensRow(entry, vocab, pos) {
    var k = entry.k, out = [];
    for (var r = 0; r < k; r++) out.push({ id: entry.ids[pos * k + r], tok: vocab[entry.ids[pos * k + r]], p: entry.probs[pos * k + r] });
    return out;
  }

  function chip(text, p, title) {  /* p: a probability, on the sequential scale */
    var c = el("span", "chip", text);
    c.style.background = rgb(seq(p));
    c.style.color = inkFor(p);
    if (title) c.title = title;
    return c;
  }
  function signedChip(text, v, limit, title) {  /* v: a signed value, on the diverging scale ±limit */
    var c = el("span", "chip", text);
    c.style.background = rgb(PAL.diverging(v, limit));
    c.style.color = PAL.ink("diverging", v, -limit, limit);
    c.title = title;
    return c;
  }

  function scrollTable(container, head, rows, build) {
    var wrap = el("div", "scroll-box"), table = el("table", "data"), thead = el("thead"), tr = el("tr"), tbody = el("tbody");
    head.forEach(function (h) { tr.appendChild(el("th", null, h)); });
    thead.appendChild(tr);
    table.appendChild(thead);
    for (var i = 0; i < rows; i++) tbody.appendChild(build(i));
    table.appendChild(tbody);
    wrap.appendChild(table);
    container.appendChild(wrap);
    return wrap;
  }

  function wordMap(container, weights, vocab, label) {
    var ids = Object.keys(weights).sort(function (a, b) { return weights[b] - weights[a] || (+a) - (+b); }).slice(0, 40);
    var box = el("div", "wordmap");
    box.setAttribute("aria-label", label);
    var max = ids.length ? weights[ids[0]] : 1;
    ids.forEach(function (id) {
      var w = weights[id] / max, word = el("span", "word", vocab[id]);
      word.style.fontSize = (12 + 22 * Math.sqrt(w)).toFixed(1) + "px";
      word.style.color = rgb(PAL.word(w));  /* as the PNG word maps */
      word.title = vocab[id] + " (id " + id + "): " + fmt(weights[id], 4);
      box.appendChild(word);
    });
    container.appendChild(box);
  }

  function drawLensMap(container, l) {
    var lens = window.__vizData.lens, entry = lens.layers[l], mass = {};
    container.textContent = "";
    for (var i = 0; i < entry.ids.length; i++) mass[entry.ids[i]] = (mass[entry.ids[i]] || 0) + entry.probs[i];
    container.appendChild(el("p", "note", "Word map: each token sized by its probability summed over all positions (top-5 at each position, " + entry.hook + ")."));
    wordMap(container, mass, lens.vocab, "logit lens word map, layer " + l);
    container.setAttribute("data-drawn", "1");
  }

  function drawLens(container, l) {
    var lens = window.__vizData.lens, entry = lens.layers[l], vocab = lens.vocab;
    container.textContent = "";
    var head = ["pos", "token"];
    for (var r = 1; r <= entry.k; r++) head.push("#" + r);
    head.push("entropy (bits)", "KL to final (bits)");
    scrollTable(container, head, T, function (pos) {
      var tr = el("tr");
      tr.appendChild(el("td", "num", pos));
      tr.appendChild(el("td", "tok", tokenLabel(pos)));
      lensRow(entry, vocab, pos).forEach(function (c) {
        var td = el("td");
        td.appendChild(chip(c.tok, c.p, "id " + c.id + ", probability " + fmt(c.p, 6)));
        td.appendChild(el("span", "p", fmt(c.p, 3)));
        tr.appendChild(td);
      });
      tr.appendChild(el("td", "num", fmt(entry.entropy[pos], 3)));
      tr.appendChild(el("td", "num", fmt(entry.kl[pos], 3)));
      return tr;
    });
    container.setAttribute("data-drawn", "1");
  }

  function drawNeurons(container, neurons) {
    container.textContent = "";
    var head = ["pos", "token"], k = neurons.k;
    for (var r = 1; r <= k; r++) head.push("#" + r);
    var max = 1e-12;
    neurons.values.forEach(function (v) { if (isFinite(v)) max = Math.max(max, Math.abs(v)); });  /* NaN: grey chips */
    scrollTable(container, head, T, function (pos) {
      var tr = el("tr");
      tr.appendChild(el("td", "num", pos));
      tr.appendChild(el("td", "tok", tokenLabel(pos)));
      for (var r = 0; r < k; r++) {
        var v = neurons.values[pos * k + r], td = el("td");
        td.appendChild(signedChip("n" + neurons.ids[pos * k + r], v, max, "neuron " + neurons.ids[pos * k + r] + ": " + fmt(v, 4)));
        td.appendChild(el("span", "p", fmt(v, 2)));
        tr.appendChild(td);
      }
      return tr;
    });
    container.appendChild(el("p", "note", "Chip colour: the activation on the diverging scale (blue −, white 0, red +), ±" + fmt(max, 3) +
                                          ", this layer's largest |activation| shown."));
    container.setAttribute("data-drawn", "1");
  }

  var SVGNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var a in attrs) if (Object.prototype.hasOwnProperty.call(attrs, a)) e.setAttribute(a, attrs[a]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function drawNorms(container, norms) {
    if (!container) return;
    container.textContent = "";
    var series = ["hook_resid_pre", "hook_resid_mid", "hook_resid_post"]
      .filter(function (h) { return norms[h]; })
      .map(function (h) { return [h, PAL.series[h], h.replace("hook_", "")]; });  /* the PNG chart's colours */
    var W = 760, Hh = 220, L = 52, R = 12, Tp = 14, B = 34, max = 0;
    series.forEach(function (s) { norms[s[0]].forEach(function (v) { if (isFinite(v)) max = Math.max(max, v); }); });
    max = max || 1;
    var root = svg("svg", { viewBox: "0 0 " + W + " " + Hh, "class": "norms", role: "img", "aria-label": "L2 norm of the residual stream per position" });
    function X(i) { return L + (T === 1 ? (W - L - R) / 2 : i * (W - L - R) / (T - 1)); }
    function Y(v) { return Tp + (Hh - Tp - B) * (1 - v / max); }
    root.appendChild(svg("line", { x1: L, y1: Y(0), x2: W - R, y2: Y(0), stroke: "#99a" }));
    root.appendChild(svg("line", { x1: L, y1: Tp, x2: L, y2: Y(0), stroke: "#99a" }));
    [0, 0.5, 1].forEach(function (f) {
      root.appendChild(svg("text", { x: L - 4, y: Y(max * f) + 4, "text-anchor": "end", "class": "axis" }, fmt(max * f, 1)));
    });
    root.appendChild(svg("text", { x: (W + L) / 2, y: Hh - 4, "text-anchor": "middle", "class": "axis" }, "position (0 … " + (T - 1) + ")"));
    series.forEach(function (s, k) {
      var runs = [[]];  /* a norm that is not a finite number (NaN, inf) breaks the line */
      norms[s[0]].forEach(function (v, i) {
        if (isFinite(v)) runs[runs.length - 1].push(X(i).toFixed(1) + "," + Y(v).toFixed(1));
        else if (runs[runs.length - 1].length) runs.push([]);
      });
      runs.forEach(function (pts) {
        if (pts.length) root.appendChild(svg("polyline", { points: pts.join(" "), fill: "none", stroke: s[1], "stroke-width": 1.6 }));
      });
      root.appendChild(svg("text", { x: L + 10 + k * 110, y: Tp + 2, style: "fill:" + s[1], "class": "axis" }, "— " + s[2]));
    });
    container.appendChild(root);
    container.setAttribute("data-drawn", "1");
  }

  /* ---------- the position in focus: a hovered token, marked in every view ---------- */

  /* views register a function(pos) that marks position pos (its row as a query, its column as a key)
     or nothing (null); hovering a token in any of them moves the focus for all */
  var focusPos = null, focusViews = [];
  function setFocusPos(pos) {
    if (pos !== null && !(pos >= 0 && pos < T && pos === Math.floor(pos))) return;  /* not a position of this input */
    if (pos === focusPos) return;
    var t0 = performance.now();
    focusPos = pos;
    focusViews.forEach(function (f) { f(pos); });
    timing.focus = Math.round((performance.now() - t0) * 10) / 10;
  }
  function onFocus(f) { focusViews.push(f); f(focusPos); }
  window.__vizFocus = function (pos) { if (pos !== undefined) setFocusPos(pos); return focusPos; };  /* page tests */
  function hoverTokens(container, selector) {  /* hovering an element with data-pos focuses that position */
    container.addEventListener("mouseover", function (ev) {
      var t = ev.target.closest ? ev.target.closest(selector) : null;
      if (t && container.contains(t)) setFocusPos(+t.getAttribute("data-pos"));
    });
  }
  function markList(items, cls) {  /* a list indexed by position: class `cls` on the focused one */
    var last = null;
    return function (pos) {
      if (last !== null && items[last]) items[last].classList.remove(cls);
      last = pos;
      if (pos !== null && items[pos]) items[pos].classList.add(cls);
    };
  }
  (function () {  /* the probe's token list in the overview */
    var list = document.querySelector("ol.probe-tokens");
    if (!list) return;
    hoverTokens(list, "li[data-pos]");
    onFocus(markList(list.querySelectorAll("li[data-pos]"), "focus"));
  })();

  /* ---------- model view: every layer x head, max-pooled tiles ---------- */

  function initThumbs(section) {
    var th = window.__vizData.thumbs, S = th.size, box = section.querySelector(".thumb-grid");
    var first = function (b) { return Math.floor(b * T / S); };  /* viewdata.thumbnail's blocks: b covers first(b)..first(b+1)-1 */
    var thumbMask = causalMask(S, first), cellOf = new Int32Array(T);
    for (var b = 0; b < S; b++) for (var p = first(b); p < first(b + 1); p++) cellOf[p] = b;
    var types = headTypes();
    box.textContent = "";
    var table = el("table", "thumbs"), tr = el("tr"), overlays = [];
    tr.appendChild(el("th", null, ""));
    for (var h = 0; h < page.n_head; h++) tr.appendChild(el("th", null, "H" + h));
    table.appendChild(tr);
    th.layers.forEach(function (heads, l) {
      var row = el("tr");
      row.appendChild(el("th", null, "L" + l));
      heads.forEach(function (b64, h) {
        var td = el("td"), btn = el("button", "thumb"), c = document.createElement("canvas"), raw = bytes(b64);
        var rowBand = el("span", "mv-band mv-row"), colBand = el("span", "mv-band mv-col");
        var cells = new Float32Array(raw.length);
        for (var k = 0; k < raw.length; k++) cells[k] = raw[k] / 255;
        paintCells(c, S, cells, thumbMask);
        redraws.push(function () { paintCells(c, S, cells, thumbMask); });
        btn.type = "button";
        var kind = types[l + "." + h];
        btn.title = "layer " + l + ", head " + h + (kind ? " (" + kind + ")" : "") + ": open it in the head view";
        btn.setAttribute("aria-label", btn.title);
        btn.setAttribute("data-layer", l);
        btn.setAttribute("data-head", h);
        btn.appendChild(c);
        btn.appendChild(rowBand);
        btn.appendChild(colBand);
        btn.onclick = function () { hideTip(); openLayerHead(l, h); };
        c.addEventListener("mousemove", function (ev) {
          var r = c.getBoundingClientRect(), rr = clamp(Math.floor((ev.clientY - r.top) / r.height * S), 0, S - 1);
          var cc = clamp(Math.floor((ev.clientX - r.left) / r.width * S), 0, S - 1);
          var lines = ["L" + l + ".H" + h + (kind ? " · " + kind : ""),
                       first(rr + 1) - first(rr) > 1 ? "queries " + first(rr) + "–" + (first(rr + 1) - 1) + " × keys " + first(cc) + "–" + (first(cc + 1) - 1)
                                                     : "query " + first(rr) + " " + tokenLabel(first(rr)) + " × key " + first(cc) + " " + tokenLabel(first(cc))];
          lines.push(CAUSAL && first(cc) > first(rr + 1) - 1 ? "masked: later positions" : "largest weight ≈" + fmt(cells[rr * S + cc], 3));
          lines.push("click: open this head");
          showTip(ev, lines);
        });
        c.addEventListener("mouseleave", hideTip);
        overlays.push([rowBand, colBand]);
        td.appendChild(btn);
        row.appendChild(td);
      });
      table.appendChild(row);
    });
    /* tiles as large as the column allows (at most 2 screen pixels per cell), never under 40 px */
    var width = box.clientWidth || 800, tile = clamp(Math.floor((width - 40) / page.n_head) - 6, 40, Math.max(40, 2 * S));
    box.style.setProperty("--tile", tile + "px");
    box.appendChild(table);
    /* the strip of tokens: hover one to mark its row and column in every tile */
    var strip = section.querySelector(".mv-strip"), chips = [];
    strip.textContent = "";
    for (var i = 0; i < T; i++) {
      var chip = el("span", "mv-tok", tokenLabel(i));
      chip.setAttribute("data-pos", i);
      chip.title = "position " + i;
      strip.appendChild(chip);
      chips.push(chip);
    }
    hoverTokens(strip, ".mv-tok");
    var readout = section.querySelector(".mv-readout"), markChip = markList(chips, "focus");
    onFocus(function (pos) {
      markChip(pos);
      if (pos !== null && !strip.matches(":hover")) {  /* focused elsewhere: bring its chip into the strip's view */
        var chip = chips[pos], left = chip.offsetLeft;  /* .mv-strip is positioned: offsets are within it */
        if (left < strip.scrollLeft || left + chip.offsetWidth > strip.scrollLeft + strip.clientWidth) strip.scrollLeft = left - strip.clientWidth / 2;
      }
      var top = pos === null ? "" : (cellOf[pos] / S * 100) + "%", size = (100 / S) + "%";
      overlays.forEach(function (o) {
        o[0].style.display = o[1].style.display = pos === null ? "none" : "block";
        o[0].style.top = top; o[0].style.height = size;
        o[1].style.left = top; o[1].style.width = size;
      });
      readout.textContent = pos === null ? "Hover a token (here, in the token list above, in a head view) to mark its row and column." :
        "Position " + pos + " (" + tokenLabel(pos) + "): its row (as a query) and column (as a key) are marked in every tile" +
        (first(cellOf[pos] + 1) - first(cellOf[pos]) > 1 ? " (the cell covering positions " + first(cellOf[pos]) + "–" + (first(cellOf[pos] + 1) - 1) + ")" : "") + ".";
    });
    section.setAttribute("data-ready", "1");
  }

  /* "layer.head" -> its types ("previous-token, induction"), from the head-types table when the page has one */
  function headTypes() {
    var out = {};
    Array.prototype.forEach.call(document.querySelectorAll("table.head-types tr.head-row"), function (row) {
      var kinds = row.cells[1].getAttribute("data-v");
      if (kinds) out[row.getAttribute("data-layer") + "." + row.getAttribute("data-head")] = kinds;
    });
    return out;
  }

  function openLayerHead(l, h) {
    var section = document.getElementById("layer-" + l);
    if (layers[l]) selectHead(layers[l], h);
    else pendingHeads[l] = h;
    section.open = true;
    var target = section.querySelector(".attention-view") || section;
    target.scrollIntoView({ block: "start" });
  }

  /* ---------- logit lens table: layer x position ---------- */

  /* rows: "embed" (the residual entering block 0, reports since it was stored) then after each layer;
     columns: positions (number and token); row labels and column heads stay in view (sticky) */
  function initLensGrid(section) {
    var lens = window.__vizData.lens, vocab = lens.vocab, box = section.querySelector(".lens-grid");
    var panel = section.querySelector(".lens-panel");
    var rows = (lens.embed ? [{ entry: lens.embed, key: "embed", label: "embed", title: "the embeddings: " + lens.embed.hook + ", before block 0" }] : [])
      .concat(lens.layers.map(function (e) { return { entry: e, key: String(e.layer), label: "after L" + e.layer, title: e.hook }; }));
    box.textContent = "";
    var wrap = el("div", "scroll-box wide lens-scroll"), table = el("table", "lens"), thead = el("thead"), head = el("tr"), tbody = el("tbody");
    var corner = el("th", "corner");
    corner.appendChild(el("span", "pos", "position →"));
    corner.appendChild(el("span", null, "layer ↓"));
    head.appendChild(corner);
    var cols = [];
    for (var i = 0; i < T; i++) {
      var th = el("th", "col");
      th.appendChild(el("span", "pos", i));
      th.appendChild(el("span", "tok", tokenLabel(i)));
      th.title = "position " + i + ": " + tokenLabel(i);
      th.setAttribute("data-pos", i);
      head.appendChild(th);
      cols.push(th);
    }
    hoverTokens(head, "th.col");
    thead.appendChild(head);
    table.appendChild(thead);
    var byKey = {}, rowHeads = {};
    rows.forEach(function (row) {
      var tr = el("tr"), entry = row.entry, rh = el("th", "row", row.label);
      byKey[row.key] = row;
      rowHeads[row.key] = rh;
      rh.title = row.title;
      tr.appendChild(rh);
      for (var pos = 0; pos < T; pos++) {
        var top = entry.ids[pos * entry.k], p = entry.probs[pos * entry.k], td = el("td", "cell", vocab[top]);
        td.style.background = rgb(seq(p));
        td.style.color = inkFor(p);
        td.setAttribute("data-layer", row.key);
        td.setAttribute("data-pos", pos);
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    var hot = [];
    function show(ev) {
      var td = ev.target;
      if (!td.classList || !td.classList.contains("cell")) return;
      var key = td.getAttribute("data-layer"), pos = +td.getAttribute("data-pos"), row = byKey[key], entry = row.entry;
      hot.forEach(function (e) { e.classList.remove("hot"); });
      hot = [td, rowHeads[key], cols[pos]];
      hot.forEach(function (e) { e.classList.add("hot"); });
      panel.textContent = "";
      panel.appendChild(el("strong", null, (key === "embed" ? "The embeddings (before block 0)" : "After layer " + key) +
                                           " at position " + pos + " (" + tokenLabel(pos) + "), " + entry.hook + ":"));
      var ol = el("ol");
      lensRow(entry, vocab, pos).forEach(function (c) {
        var li = el("li");
        li.appendChild(chip(c.tok, c.p, "id " + c.id));
        li.appendChild(el("span", "p", " " + fmt(c.p, 6)));
        ol.appendChild(li);
      });
      panel.appendChild(ol);
      panel.appendChild(el("div", "note", "entropy " + fmt(entry.entropy[pos], 3) + " bits; KL(final ‖ lens) " + fmt(entry.kl[pos], 3) + " bits"));
    }
    table.addEventListener("mouseover", show);
    table.addEventListener("click", show);
    onFocus(markList(cols, "focus"));
    wrap.appendChild(table);
    box.appendChild(wrap);
    section.setAttribute("data-ready", "1");
  }

  /* ---------- nearest neighbours, next tokens at every position ---------- */

  function initNeighbours(section) {
    var d = window.__vizData.embeddings, box = section.querySelector(".neighbours-view");
    box.textContent = "";
    var head = ["pos", "token", "nearest tokens by cosine of their W_E rows (size ∝ cosine)"];
    scrollTable(box, head, T, function (pos) {
      var tr = el("tr"), td = el("td", "wordrow");
      tr.appendChild(el("td", "num", pos));
      tr.appendChild(el("td", "tok", tokenLabel(pos)));
      for (var r = 0; r < d.k; r++) {
        var id = d.ids[pos * d.k + r], c = d.cosine[pos * d.k + r], w = el("span", "word", d.vocab[id]);
        var s = clamp((c + 1) / 2, 0, 1);
        w.style.fontSize = (11 + 14 * s * s).toFixed(1) + "px";
        w.title = "id " + id + ", cosine " + fmt(c, 4);
        td.appendChild(w);
      }
      tr.appendChild(td);
      return tr;
    });
    section.setAttribute("data-ready", "1");
  }

  function initFinal(section) {
    var d = window.__vizData.final, box = section.querySelector(".final-view");
    box.textContent = "";
    var head = ["pos", "token"];
    for (var r = 1; r <= d.k; r++) head.push("#" + r);
    head.push("entropy (bits)");
    var wrap = scrollTable(box, head, T, function (pos) {
      var tr = el("tr", pos === T - 1 ? "last" : null);
      tr.appendChild(el("td", "num", pos));
      tr.appendChild(el("td", "tok", tokenLabel(pos)));
      for (var r = 0; r < d.k; r++) {
        var n = pos * d.k + r, td = el("td");
        td.appendChild(chip(d.vocab[d.ids[n]], d.probs[n], "id " + d.ids[n] + ", logit " + fmt(d.logits[n], 4)));
        td.appendChild(el("span", "p", fmt(d.probs[n], 3)));
        tr.appendChild(td);
      }
      tr.appendChild(el("td", "num", fmt(d.entropy[pos], 3)));
      return tr;
    });
    wrap.scrollTop = wrap.scrollHeight;
    section.setAttribute("data-ready", "1");
  }

  /* ---------- neuron pages: what the top neurons write, where they fire ---------- */

  function decodeActs(n) {  /* int8 codes -> activations (viewdata.signed_codes) */
    var b = bytes(n.acts), out = new Float32Array(b.length);
    for (var i = 0; i < b.length; i++) out[i] = (b[i] > 127 ? b[i] - 256 : b[i]) * n.scale / 127;
    return out;
  }

  /* the activation at every position as bars from a middle line, each pixel column its largest |value| */
  function drawStrip(canvas, acts, scale) {
    var dpr = window.devicePixelRatio || 1, W = Math.max(100, Math.floor(canvas.clientWidth || 300)), H = 40;
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(H * dpr);
    var ctx = canvas.getContext("2d"), mid = H / 2, lim = scale || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#f6f7f9";
    ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = "#ccd";
    ctx.fillRect(0, mid, W, 0.5);
    var per = T / W;
    for (var x = 0; x < W; x++) {
      var a = Math.floor(x * per), b = Math.max(a + 1, Math.floor((x + 1) * per)), v = 0;
      for (var i = a; i < b && i < T; i++) if (Math.abs(acts[i]) > Math.abs(v)) v = acts[i];
      if (!v) continue;
      ctx.fillStyle = rgb(PAL.diverging(v, lim));
      var h = Math.max(1, Math.abs(v) / lim * (mid - 1));
      ctx.fillRect(x, v > 0 ? mid - h : mid, Math.max(1, 1 / per), h);
    }
    canvas.setAttribute("data-drawn", "1");
  }

  function neuronCard(layer, n, vocab) {
    var card = el("article", "neuron-card"), acts = decodeActs(n);
    card.id = "neuron-L" + layer + "-N" + n.id;
    card.appendChild(el("h4", null, "L" + layer + " · neuron " + n.id));
    card.appendChild(el("p", "note", "largest activation " + fmt(n.max, 3) + " at position " + n.at + " (" + tokenLabel(n.at) + ")" +
                                     "; active (> 0) at " + fmt(100 * n.firing, 1) + "% of positions"));
    var wrap = el("div", "strip-wrap"), canvas = el("canvas", "neuron-strip"), marker = el("span", "strip-mark");
    wrap.appendChild(canvas);
    wrap.appendChild(marker);
    card.appendChild(wrap);
    canvas.setAttribute("aria-label", "activation of neuron " + n.id + " of layer " + layer + " at every position");
    canvas.addEventListener("mousemove", function (ev) {
      var r = canvas.getBoundingClientRect(), pos = clamp(Math.floor((ev.clientX - r.left) / r.width * T), 0, T - 1);
      setFocusPos(pos);
      showTip(ev, ["L" + layer + " neuron " + n.id, "position " + pos + " " + tokenLabel(pos), "activation ≈" + fmt(acts[pos], 3) + " (8-bit data: ±" + fmt(n.scale / 254, 3) + ")"]);
    });
    canvas.addEventListener("mouseleave", hideTip);
    /* where it fires most: the top positions, each with the tokens around it */
    var order = [];
    for (var i = 0; i < T; i++) order.push(i);
    order.sort(function (a, b) { return acts[b] - acts[a] || a - b; });
    var fires = el("div", "fires");
    fires.appendChild(el("span", "label", "fires most at"));
    order.slice(0, 5).forEach(function (pos) {
      if (!(acts[pos] > 0)) return;
      var line = el("span", "context");
      line.setAttribute("data-pos", pos);
      line.title = "position " + pos + ": activation ≈" + fmt(acts[pos], 3);
      for (var j = Math.max(0, pos - 4); j <= Math.min(T - 1, pos + 1); j++) {
        var t = el("span", j === pos ? "hit" : null, tokenLabel(j));
        if (j === pos) { t.style.background = rgb(PAL.diverging(acts[pos], n.scale || 1)); t.style.color = PAL.ink("diverging", acts[pos], -(n.scale || 1), n.scale || 1); }
        line.appendChild(t);
      }
      line.appendChild(el("span", "p", "@" + pos));
      fires.appendChild(line);
    });
    hoverTokens(fires, ".context");
    card.appendChild(fires);
    var lim = 1e-12;
    n.up.concat(n.down).forEach(function (e) { lim = Math.max(lim, Math.abs(e[1])); });
    [["promotes", n.up], ["suppresses", n.down]].forEach(function (part) {
      var row = el("div", "writes");
      row.appendChild(el("span", "label", part[0]));
      part[1].forEach(function (e) {
        row.appendChild(signedChip(vocab[e[0]], e[1], lim, "id " + e[0] + ": logit " + (e[1] >= 0 ? "+" : "") + fmt(e[1], 4) + " per unit activation"));
      });
      card.appendChild(row);
    });
    return { card: card, draw: function () { drawStrip(canvas, acts, n.scale); },
             mark: function (pos) {
               marker.style.display = pos === null ? "none" : "block";
               if (pos !== null) marker.style.left = ((pos + 0.5) / T * 100) + "%";
             } };
  }

  function initNeuronPages(section) {
    var d = window.__vizData.neurons, box = section.querySelector(".neuron-pages"), cards = [];
    box.textContent = "";
    d.layers.forEach(function (entry) {
      var part = el("section", "neuron-layer"), grid = el("div", "neuron-grid");
      part.appendChild(el("h3", null, "Layer " + entry.layer + " (" + entry.hook + ")"));
      entry.neurons.forEach(function (n) {
        var c = neuronCard(entry.layer, n, d.vocab);
        grid.appendChild(c.card);
        cards.push(c);
      });
      part.appendChild(grid);
      box.appendChild(part);
    });
    cards.forEach(function (c) { c.draw(); });
    onFocus(function (pos) { cards.forEach(function (c) { c.mark(pos); }); });
    section.setAttribute("data-ready", "1");
  }

  /* ---------- choose: any position, its next tokens, a target or a contrast pair ---------- */

  function float16(b64) {  /* base64 of little-endian float16 -> Float32Array */
    var b = bytes(b64), n = b.length >> 1, out = new Float32Array(n);
    for (var i = 0; i < n; i++) {
      var h = b[2 * i] | (b[2 * i + 1] << 8), sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, f = h & 1023;
      out[i] = e === 0 ? sign * f * Math.pow(2, -24) : (e === 31 ? (f ? NaN : sign * Infinity) : sign * (1 + f / 1024) * Math.pow(2, e - 15));
    }
    return out;
  }
  function int8(b64) {
    var b = bytes(b64), out = new Int8Array(b.length);
    for (var i = 0; i < b.length; i++) out[i] = b[i] > 127 ? b[i] - 256 : b[i];
    return out;
  }

  /* the breakdown's parts laid out as the static table: whole rows (embeddings, others, constant)
     and one row per layer of heads, attention bias, MLP */
  function componentLayout(names) {
    var index = {}, hasBias = false, whole = [];
    names.forEach(function (n, i) { index[n] = i; if (/\.attn_bias$/.test(n)) hasBias = true; });
    var cols = [];
    for (var h = 0; h < page.n_head; h++) cols.push("H" + h);
    if (hasBias) cols.push("bias");
    cols.push("MLP");
    var rows = [], known = {};
    for (var l = 0; l < page.n_layer; l++) {
      var cells = [];
      for (h = 0; h < page.n_head; h++) cells.push("L" + l + ".H" + h);
      if (hasBias) cells.push("L" + l + ".attn_bias");
      cells.push("L" + l + ".mlp");
      cells.forEach(function (n) { known[n] = 1; });
      rows.push({ label: "L" + l, cells: cells.map(function (n) { return index[n]; }) });
    }
    names.forEach(function (n, i) { if (!known[n]) whole.push({ label: n, index: i }); });
    return { cols: cols, rows: rows, whole: whole };
  }

  function initChoose(section) {
    var d = window.__vizData.choices, fin = window.__vizData.final, box = section.querySelector(".choose-view");
    var names = d.components, ncol = d.breakdown.columns, parts = float16(d.breakdown.data), layout = componentLayout(names);
    var start = [0];  /* first row (position, candidate) of each position */
    d.ids.forEach(function (row, p) { start.push(start[p] + row.length); });
    var codes = d.attribution.codes ? int8(d.attribution.codes) : null, attr = {}, o = 0;
    d.attribution.positions.forEach(function (p, i) { attr[p] = { off: o, scales: d.attribution.scales[i] }; o += d.ids[p].length * (p + 1); });
    var rollout = decodeHead(d.rollout, 0);
    var state = { pos: T - 1, a: null, b: null, picked: false };  /* picked: the reader chose A (kept across positions) */
    box.textContent = "";

    /* controls and the clickable strip of tokens */
    var bar = el("div", "ch-bar"), input = el("input"), prev = el("button", null, "◀"), next = el("button", null, "▶");
    input.type = "number"; input.min = "0"; input.max = String(T - 1); input.value = String(T - 1);
    input.setAttribute("aria-label", "position");
    prev.type = next.type = "button";
    prev.setAttribute("aria-label", "previous position"); next.setAttribute("aria-label", "next position");
    var label = el("label", null, "Position ");
    label.appendChild(input);
    [label, prev, next].forEach(function (e) { bar.appendChild(e); });
    var status = el("span", "ch-status note");
    bar.appendChild(status);
    box.appendChild(bar);
    var strip = el("div", "ch-strip scroll-box"), chips = [];
    for (var i = 0; i < T; i++) {
      var c = el("span", "ch-tok", tokenLabel(i));
      c.setAttribute("data-pos", i);
      c.title = "position " + i + ": click to choose it";
      strip.appendChild(c);
      chips.push(c);
    }
    box.appendChild(strip);
    hoverTokens(strip, ".ch-tok");
    onFocus(markList(chips, "focus"));
    var panel = el("div", "ch-panel"), nextBox = el("div", "ch-next"), breakBox = el("div", "ch-break"), attrBox = el("div", "ch-attr");
    [nextBox, breakBox, attrBox].forEach(function (e) { panel.appendChild(e); });
    box.appendChild(panel);
    /* the attribution's own strip of tokens, recoloured for each choice */
    var attrTitle = el("h4"), attrNote = el("p", "note"), attrStrip = el("div", "ch-astrip scroll-box"), attrChips = [];
    for (i = 0; i < T; i++) {
      var ac = el("span", "tok", tokenLabel(i));
      ac.setAttribute("data-pos", i);
      attrStrip.appendChild(ac);
      attrChips.push(ac);
    }
    hoverTokens(attrStrip, ".tok");
    [attrTitle, attrNote, attrStrip].forEach(function (e) { attrBox.appendChild(e); });

    function row(pos, id) { var k = d.ids[pos].indexOf(id); return k < 0 ? -1 : start[pos] + k; }
    function partsOf(pos) {  /* A's parts, or A's minus B's: n_components + 1 values (the last: constant) */
      var ra = row(pos, state.a), rb = state.b === null ? -1 : row(pos, state.b), out = new Float64Array(ncol);
      for (var c = 0; c < ncol; c++) out[c] = parts[ra * ncol + c] - (rb < 0 ? 0 : parts[rb * ncol + c]);
      return out;
    }
    function rawOf(pos, id) { return d.breakdown.raw[pos][d.ids[pos].indexOf(id)]; }
    function what() {
      return state.b === null ? "logit of " + d.vocab[state.a] : "logit difference " + d.vocab[state.a] + " − " + d.vocab[state.b];
    }

    function drawNext(pos) {
      nextBox.textContent = "";
      nextBox.appendChild(el("h4", null, "After position " + pos + " (" + tokenLabel(pos) + "): next tokens"));
      var table = el("table", "data ch-table"), thead = el("thead"), tr = el("tr"), tbody = el("tbody");
      ["#", "token", "probability", "logit", "A", "B"].forEach(function (h) { tr.appendChild(el("th", null, h)); });
      thead.appendChild(tr);
      table.appendChild(thead);
      var shown = [];
      for (var r = 0; r < fin.k; r++) shown.push({ rank: r + 1, id: fin.ids[pos * fin.k + r], p: fin.probs[pos * fin.k + r], logit: fin.logits[pos * fin.k + r] });
      d.ids[pos].forEach(function (id) {  /* a candidate beyond the table (the --target token) */
        if (!shown.some(function (x) { return x.id === id; })) shown.push({ rank: "–", id: id, p: null, logit: rawOf(pos, id), added: true });
      });
      shown.forEach(function (x) {
        var tr = el("tr"), ok = d.ids[pos].indexOf(x.id) >= 0;
        tr.appendChild(el("td", "num", x.rank));
        var td = el("td");
        td.appendChild(x.p === null ? el("span", "chip", fin.vocab[x.id] || d.vocab[x.id]) : chip(fin.vocab[x.id], x.p, "id " + x.id));
        if (x.added) td.appendChild(el("span", "p", "--target"));
        tr.appendChild(td);
        tr.appendChild(el("td", "num", x.p === null ? "–" : fmt(x.p, 4)));
        tr.appendChild(el("td", "num", fmt(x.logit, 3)));
        ["a", "b"].forEach(function (side) {
          var cell = el("td"), radio = el("input");
          radio.type = "radio";
          radio.name = "ch-" + side;
          radio.value = String(x.id);
          radio.disabled = !ok;
          radio.checked = state[side] === x.id;
          radio.title = ok ? (side === "a" ? "target A" : "contrast B") : "not precomputed (beyond the top " + d.candidates + ")";
          radio.addEventListener("change", function () {
            state[side] = x.id;
            if (side === "a") { state.picked = true; if (state.b === x.id) state.b = null; }
            else if (state.a === x.id) state.a = d.ids[pos].filter(function (i) { return i !== x.id; })[0];
            draw();
          });
          cell.appendChild(radio);
          tr.appendChild(cell);
        });
        tbody.appendChild(tr);
      });
      var none = el("tr", "none"), cell = el("td"), radio = el("input");
      none.appendChild(el("td", null, ""));
      none.appendChild(el("td", "note", "no B: A's logit alone"));
      none.appendChild(el("td")); none.appendChild(el("td")); none.appendChild(el("td"));
      radio.type = "radio"; radio.name = "ch-b"; radio.checked = state.b === null;
      radio.addEventListener("change", function () { state.b = null; draw(); });
      cell.appendChild(radio);
      none.appendChild(cell);
      tbody.appendChild(none);
      table.appendChild(tbody);
      nextBox.appendChild(table);
      nextBox.appendChild(el("p", "note", "Entropy " + fmt(fin.entropy[pos], 3) + " bits. A and B: any of the " + d.ids[pos].length +
                                          " candidates precomputed here."));
    }

    function drawBreakdown(pos) {
      var v = partsOf(pos), vmax = 1e-12, total = 0;
      for (var c = 0; c < ncol; c++) { if (isFinite(v[c])) vmax = Math.max(vmax, Math.abs(v[c])); total += v[c]; }
      breakBox.textContent = "";
      breakBox.appendChild(el("h4", null, "Where the " + what() + " comes from"));
      var wrap = el("div", "ch-grid-wrap"), table = el("table", "data comps ch-grid"), tr = el("tr");
      tr.appendChild(el("th", null, ""));
      layout.cols.forEach(function (h) { tr.appendChild(el("th", null, h)); });
      table.appendChild(tr);
      function cellOf(value, name) {
        var td = el("td", "cellv", fmt(value, 3));
        td.style.background = rgb(PAL.diverging(value, vmax));
        td.style.color = PAL.ink("diverging", value, -vmax, vmax);
        td.title = name + ": " + fmt(value, 4);
        return td;
      }
      function whole(labelText, value, name) {
        var r = el("tr", "whole"), td = cellOf(value, name);
        r.appendChild(el("th", null, labelText));
        td.colSpan = layout.cols.length;
        r.appendChild(td);
        table.appendChild(r);
      }
      layout.whole.filter(function (w) { return /embed/.test(w.label); }).forEach(function (w) { whole(w.label, v[w.index], w.label); });
      layout.rows.forEach(function (r) {
        var tr = el("tr");
        tr.appendChild(el("th", null, r.label));
        r.cells.forEach(function (idx, j) {
          if (idx === undefined) tr.appendChild(el("td", null, "–"));
          else tr.appendChild(cellOf(v[idx], names[idx]));
        });
        table.appendChild(tr);
      });
      layout.whole.filter(function (w) { return !/embed/.test(w.label); }).forEach(function (w) { whole(w.label, v[w.index], w.label); });
      whole("constant", v[ncol - 1], "ln_final's constant · W_U");
      wrap.appendChild(table);
      breakBox.appendChild(wrap);
      var raw = rawOf(pos, state.a) - (state.b === null ? 0 : rawOf(pos, state.b));
      breakBox.appendChild(el("p", "note", "Sum of the parts ≈" + fmt(total, 4) + " (float16 parts); raw " + what() + " " + fmt(raw, 4) +
                                           ". Colours: diverging, ±" + fmt(vmax, 3) + " (this choice's largest |part|)."));
      var order = [];
      for (c = 0; c < ncol - 1; c++) order.push(c);
      order.sort(function (x, y) { return Math.abs(v[y]) - Math.abs(v[x]) || x - y; });
      var top = el("p", "ch-top");
      top.appendChild(el("span", "label", "largest parts: "));
      order.slice(0, 6).forEach(function (c) { top.appendChild(signedChip(names[c] + " " + (v[c] >= 0 ? "+" : "") + fmt(v[c], 2), v[c], vmax, names[c])); });
      breakBox.appendChild(top);
      breakBox.setAttribute("data-sum", total);
      breakBox.setAttribute("data-raw", raw);
    }

    function drawAttribution(pos) {
      var a = attr[pos], vals = new Float64Array(pos + 1), vmax = 1e-12, j;
      if (a) {
        var n = pos + 1, ka = d.ids[pos].indexOf(state.a), kb = state.b === null ? -1 : d.ids[pos].indexOf(state.b);
        for (j = 0; j <= pos; j++) {
          vals[j] = codes[a.off + ka * n + j] * a.scales[ka] / 127 - (kb < 0 ? 0 : codes[a.off + kb * n + j] * a.scales[kb] / 127);
          vmax = Math.max(vmax, Math.abs(vals[j]));
        }
        attrTitle.textContent = "Input attribution: gradient × input of the " + what();
        attrNote.textContent = "Each input token's contribution (gradient × input at " + d.attribution.input + ", 8-bit data), on the diverging scale ±" +
          fmt(vmax, 3) + "; tokens after position " + pos + " play no part (the model is causal).";
      } else {
        for (var n2 = rollout.start[pos]; n2 < rollout.start[pos + 1]; n2++) { vals[rollout.keys[n2]] = rollout.w[n2]; vmax = Math.max(vmax, rollout.w[n2]); }
        attrTitle.textContent = "Attention rollout of position " + pos + " (no gradient precomputed here)";
        attrNote.textContent = "Gradient × input was precomputed for " + (d.attribution.positions.length ? "positions " + d.attribution.positions[0] + "–" + (T - 1) : "no position") +
          " (the budget above). Attention rollout needs no target: the head-averaged attention plus identity, multiplied through the layers; sequential scale 0 to " + fmt(vmax, 3) + ".";
      }
      var t0 = performance.now();
      for (j = 0; j < T; j++) {
        var e = attrChips[j];
        if (j > pos) { e.className = "tok after"; e.style.background = ""; e.style.color = ""; e.title = "position " + j + ": after the chosen position"; continue; }
        e.className = j === pos ? "tok target" : "tok";
        var col = a ? PAL.diverging(vals[j], vmax) : seq(vals[j] / vmax);
        e.style.background = rgb(col);
        e.style.color = a ? PAL.ink("diverging", vals[j], -vmax, vmax) : inkFor(vals[j] / vmax);
        e.title = "position " + j + ": " + fmt(vals[j], 4);
      }
      timing["choose.attribution"] = Math.round((performance.now() - t0) * 10) / 10;
      attrBox.setAttribute("data-kind", a ? "gradient" : "rollout");
      var target = attrChips[pos];
      if (target.offsetTop < attrStrip.scrollTop || target.offsetTop > attrStrip.scrollTop + attrStrip.clientHeight - target.offsetHeight) attrStrip.scrollTop = target.offsetTop - attrStrip.clientHeight / 2;
    }

    function draw() {
      var t0 = performance.now(), pos = state.pos;
      drawNext(pos);
      drawBreakdown(pos);
      drawAttribution(pos);
      status.textContent = "position " + pos + " (" + tokenLabel(pos) + ") · " + what();
      box.setAttribute("data-pos", pos);
      box.setAttribute("data-a", state.a);
      box.setAttribute("data-b", state.b === null ? "" : state.b);
      timing["choose.draw"] = Math.round((performance.now() - t0) * 10) / 10;
    }
    var markChosen = markList(chips, "chosen");
    function choose(pos) {
      pos = clamp(pos | 0, 0, T - 1);
      var ids = d.ids[pos];
      if (!ids.length) return;
      state.pos = pos;
      if (!state.picked || ids.indexOf(state.a) < 0) state.a = ids[0];  /* a chosen pair is kept where both are candidates */
      if (state.b !== null && (ids.indexOf(state.b) < 0 || state.b === state.a)) state.b = null;
      input.value = String(pos);
      markChosen(pos);
      draw();
    }
    strip.addEventListener("click", function (ev) {
      var t = ev.target.closest ? ev.target.closest(".ch-tok") : null;
      if (t) choose(+t.getAttribute("data-pos"));
    });
    input.addEventListener("change", function () { choose(+input.value); });
    prev.onclick = function () { choose(state.pos - 1); };
    next.onclick = function () { choose(state.pos + 1); };
    window.__vizChoose = function (pos, a, b) {  /* page tests: choose a position and a pair, as clicking does */
      choose(pos);
      if (a !== undefined) { state.a = a; state.picked = true; }
      if (b !== undefined) state.b = b;
      draw();
      return { pos: state.pos, a: state.a, b: state.b };
    };
    choose(T - 1);
    section.setAttribute("data-ready", "1");
  }

  /* ---------- head types: sort by a column, a row opens its head ---------- */

  function sortRows(table, col, direction) {
    var tbody = table.tBodies[0], rows = Array.prototype.slice.call(tbody.rows), numeric = table.tHead.rows[0].cells[col].getAttribute("data-sort") === "num";
    var sign = direction === "ascending" ? 1 : -1;
    function key(row) {
      var v = row.cells[col].getAttribute("data-v");
      return numeric ? (v === "" ? NaN : parseFloat(v)) : v;
    }
    function order(row) { return +row.cells[0].getAttribute("data-v"); }
    var keyed = rows.map(function (row) { return [key(row), order(row), row]; });
    keyed.sort(function (a, b) {
      var an = numeric && isNaN(a[0]), bn = numeric && isNaN(b[0]);
      if (an || bn) return an === bn ? a[1] - b[1] : (an ? 1 : -1);  /* no score: always last */
      if (a[0] < b[0]) return -sign;
      if (a[0] > b[0]) return sign;
      return a[1] - b[1];
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k[2]); });
    tbody.appendChild(frag);
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === col) th.setAttribute("aria-sort", direction); else th.removeAttribute("aria-sort");
    });
  }

  function initHeadTypes() {
    Array.prototype.forEach.call(document.querySelectorAll("table.head-types"), function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
        th.tabIndex = 0;
        th.classList.add("sortable");
        function sort() {
          var now = th.getAttribute("aria-sort"), first = col > 1 ? "descending" : "ascending";  /* scores: largest first */
          var t0 = performance.now();
          sortRows(table, col, now ? (now === "ascending" ? "descending" : "ascending") : first);
          timing["heads.sort"] = Math.round(performance.now() - t0);
        }
        th.addEventListener("click", sort);
        th.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sort(); } });
      });
      function open(ev) {
        var row = ev.target.closest ? ev.target.closest("tr.head-row") : null;
        if (row) openLayerHead(+row.getAttribute("data-layer"), +row.getAttribute("data-head"));
      }
      table.tBodies[0].addEventListener("click", open);
      table.tBodies[0].addEventListener("keydown", function (ev) { if (ev.key === "Enter") open(ev); });
    });
  }
  initHeadTypes();

  /* ---------- wiring: load a section's data when it opens ---------- */

  function initSection(section) {
    var view = section.getAttribute("data-view");
    if (view === "layer") {
      initLayer(section, +section.getAttribute("data-layer"));
    } else if (view === "thumbs") initThumbs(section);
    else if (view === "lens") initLensGrid(section);
    else if (view === "neighbours") initNeighbours(section);
    else if (view === "final") initFinal(section);
    else if (view === "neuron-pages") initNeuronPages(section);
    else if (view === "choose") initChoose(section);
  }

  function onToggle(section) {
    if (!section.open || section.getAttribute("data-state")) return;
    section.setAttribute("data-state", "loading");
    var t0 = performance.now();
    need(section.getAttribute("data-needs").split(" ").filter(Boolean), function () {
      var t1 = performance.now();
      initSection(section);
      section.setAttribute("data-state", "ready");
      timing[section.id + ".load"] = Math.round(t1 - t0);
      timing[section.id + ".draw"] = Math.round(performance.now() - t1);
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("details[data-needs]"), function (section) {
    section.addEventListener("toggle", function () { onToggle(section); });
    if (section.open) onToggle(section);
  });

  /* a link to a closed section (table of contents, figure anchors) opens it and its parents */
  function openTarget(id) {
    /* #layer-L-head-H (the "what if" page's links): that layer open with head H selected */
    var head = /^layer-(\d+)-head-(\d+)$/.exec(id || "");
    if (head && document.getElementById("layer-" + head[1]) && +head[2] < page.n_head) {
      openLayerHead(+head[1], +head[2]);
      return;
    }
    var target = id && document.getElementById(id);
    for (var e = target; e; e = e.parentElement) if (e.tagName === "DETAILS") e.open = true;
  }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a[href^='#']") : null;
    if (a) openTarget(decodeURIComponent(a.getAttribute("href").slice(1)));
  });
  if (location.hash) openTarget(decodeURIComponent(location.hash.slice(1)));
})();
