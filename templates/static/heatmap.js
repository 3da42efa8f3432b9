/* A zoomable square heatmap of a [query position x key position] matrix on a canvas: position
 * axes (numbers at round steps; once every position has room, each number with its token; hovering
 * an axis picks its row or column), zoom (mouse wheel, the slider, the +/- buttons or keys + - 0;
 * double-click or "fit" shows it all), pan (drag, or the arrow keys), a crosshair on the hovered
 * cell and a tooltip naming query position and token, key position and token and the weight.
 *
 * Classic script, no dependencies: `window.VizHeatmap(canvas, options)` draws into `canvas` and puts
 * its zoom bar just before it. Options:
 *   n           positions on each axis
 *   label(i)    the readable token at position i (drawn with fillText: never parsed as HTML)
 *   fill(qa, ka, mq, mk, b, S, out)  the matrix's values for queries qa..qa+mq-1 and keys
 *               ka..ka+mk-1, pooled into blocks of b x b positions (each block its largest value):
 *               block (r, c) is out[r * S + c] (out: a zeroed Float32Array)
 *   colour(v)   [r, g, b] of a value
 *   causal      blocks wholly above the diagonal (every key after every query) are drawn grey
 *   mask        [r, g, b] of those blocks
 *   tip(q, k, block)  the tooltip's lines for a hovered cell (block: {q0, q1, k0, k1, value} when
 *               a cell covers several positions, else null)
 *   onview(view) called after the reader zooms or pans (to link several heatmaps)
 * `api.mark(pos)` marks one position's row and column (the page's hovered token; null: none).
 * The canvas gets data attributes the page tests read: data-view "q0 k0 span", data-block
 * (positions per drawn cell), data-xticks / data-yticks (positions labelled on each axis),
 * data-tokens ("1" when tokens are written beside the numbers), data-drawn.
 *
 * What this script does not do: decode data files or choose colour scales (viz.js, compare.js).
 */
(function () {
  "use strict";

  var STEPS = [1, 2, 5];
  var MIN_SPAN = 8;  /* positions visible at the deepest zoom */
  var TOKEN_PX = 9;  /* pixels per position from which every position is labelled, with its token */
  var FONT = "px VizControlPictures, ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace";  /* style.css's --mono */
  var tipBox = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function tip() {
    if (!tipBox) {
      tipBox = el("div", "viz-tip");
      tipBox.hidden = true;
      document.body.appendChild(tipBox);
    }
    return tipBox;
  }
  function showTip(ev, lines) {
    var t = tip();
    t.textContent = "";
    lines.forEach(function (line, i) { t.appendChild(el(i === 0 ? "strong" : "div", null, line)); });
    t.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14, r = t.getBoundingClientRect();
    if (x + r.width > window.innerWidth - 8) x = Math.max(4, ev.clientX - r.width - 14);
    if (y + r.height > window.innerHeight - 8) y = Math.max(4, ev.clientY - r.height - 14);
    t.style.left = x + "px";
    t.style.top = y + "px";
  }
  function hideTip() { if (tipBox) tipBox.hidden = true; }

  /* the smallest round step (1, 2, 5, 10, 20, ...) whose ticks are at least `px` pixels apart */
  function tickStep(pxPerPos, px) {
    for (var mag = 1; ; mag *= 10) {
      for (var s = 0; s < STEPS.length; s++) if (STEPS[s] * mag * pxPerPos >= px) return STEPS[s] * mag;
    }
  }

  /* text cut to `width` pixels with an ellipsis */
  function fitText(ctx, text, width) {
    if (ctx.measureText(text).width <= width) return text;
    var lo = 0, hi = text.length;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (ctx.measureText(text.slice(0, mid) + "…").width <= width) lo = mid; else hi = mid - 1;
    }
    return lo ? text.slice(0, lo) + "…" : "";
  }

  function VizHeatmap(canvas, o) {
    var n = o.n, maxZoom = Math.max(1, n / Math.min(n, MIN_SPAN));
    var view = { q0: 0, k0: 0, span: n };
    var geo = null, frame = null, hover = null, drag = null, marked = null;

    /* zoom bar: - [slider] + fit, and the visible ranges */
    var bar = el("div", "hm-bar");
    var out = el("button", "hm-out", "−"), inp = el("input", "hm-zoom"), inn = el("button", "hm-in", "+");
    var fit = el("button", "hm-fit", "fit"), range = el("span", "hm-range note");
    out.type = inn.type = fit.type = "button";
    out.setAttribute("aria-label", "zoom out");
    inn.setAttribute("aria-label", "zoom in");
    inp.type = "range";
    inp.min = "0";
    inp.max = String(Math.round(Math.log(maxZoom) / Math.LN2 * 4));
    inp.step = "1";
    inp.value = "0";
    inp.setAttribute("aria-label", "zoom");
    bar.appendChild(el("span", "label", "zoom"));
    [out, inp, inn, fit, range].forEach(function (e) { bar.appendChild(e); });
    canvas.parentNode.insertBefore(bar, canvas);
    if (maxZoom <= 1) { out.disabled = inn.disabled = inp.disabled = fit.disabled = true; }

    function clampView(v) {
      v.span = Math.max(n / maxZoom, Math.min(n, v.span));
      v.q0 = Math.max(0, Math.min(n - v.span, v.q0));
      v.k0 = Math.max(0, Math.min(n - v.span, v.k0));
      return v;
    }

    function layout() {
      var dpr = window.devicePixelRatio || 1, W = Math.max(160, Math.floor(canvas.clientWidth || canvas.parentNode.clientWidth || 400));
      var margin = Math.round(Math.max(60, Math.min(96, W * 0.13)));
      var P = W - margin - 6;
      geo = { W: W, H: margin + P + 6, M: margin, P: P, dpr: dpr };
      canvas.width = Math.round(geo.W * dpr);
      canvas.height = Math.round(geo.H * dpr);
      canvas.style.height = geo.H + "px";
    }

    /* the matrix for the current view into an offscreen canvas, one pixel per shown cell */
    function cellsImage() {
      var qa = Math.floor(view.q0), ka = Math.floor(view.k0);
      var mq = Math.min(n, Math.ceil(view.q0 + view.span)) - qa, mk = Math.min(n, Math.ceil(view.k0 + view.span)) - ka;
      var b = Math.max(1, Math.ceil(Math.max(mq, mk) / geo.P)), Sq = Math.ceil(mq / b), Sk = Math.ceil(mk / b);
      var cells = new Float32Array(Sq * Sk);
      o.fill(qa, ka, mq, mk, b, Sk, cells);
      var off = document.createElement("canvas");
      off.width = Sk;
      off.height = Sq;
      var octx = off.getContext("2d"), img = octx.createImageData(Sk, Sq), d = img.data;
      for (var r = 0; r < Sq; r++) {
        var qEnd = Math.min(qa + (r + 1) * b, n) - 1;
        for (var c = 0; c < Sk; c++) {
          var k = r * Sk + c, col = o.causal && ka + c * b > qEnd ? o.mask : o.colour(cells[k]);
          d[4 * k] = col[0]; d[4 * k + 1] = col[1]; d[4 * k + 2] = col[2]; d[4 * k + 3] = 255;
        }
      }
      octx.putImageData(img, 0, 0);
      return { off: off, qa: qa, ka: ka, b: b, S: Sk, cells: cells };
    }

    function ticks(start, span, pxPerPos) {  /* every position once rows are TOKEN_PX apart, else round steps */
      var step = pxPerPos >= TOKEN_PX ? 1 : tickStep(pxPerPos, 16), list = [];
      for (var i = Math.ceil(start / step) * step; i < start + span && i < n; i += step) {
        if (i + 0.5 >= start && i + 0.5 <= start + span) list.push(i);  /* the row's middle in view */
      }
      return { step: step, list: list };
    }

    function draw() {
      var t0 = performance.now();
      if (!geo || Math.abs(geo.W - Math.floor(canvas.clientWidth || geo.W)) > 1) layout();
      var ctx = canvas.getContext("2d"), M = geo.M, P = geo.P, px = P / view.span;
      ctx.setTransform(geo.dpr, 0, 0, geo.dpr, 0, 0);
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, geo.W, geo.H);
      var im = cellsImage();
      geo.im = im;
      ctx.imageSmoothingEnabled = false;
      /* source rectangle (in shown cells) of the fractional window q0..q0+span, k0..k0+span */
      ctx.drawImage(im.off, (view.k0 - im.ka) / im.b, (view.q0 - im.qa) / im.b, view.span / im.b, view.span / im.b, M, M, P, P);
      ctx.strokeStyle = "#99a";
      ctx.lineWidth = 1;
      ctx.strokeRect(M - 0.5, M - 0.5, P + 1, P + 1);
      /* axes: position numbers at round steps; with a cell per token, the token too */
      var rows = ticks(view.q0, view.span, px), cols = ticks(view.k0, view.span, px);
      var withTokens = px >= TOKEN_PX;
      ctx.font = (withTokens ? Math.max(9, Math.min(11, Math.floor(px))) : 11) + FONT;  /* labels no taller than their row */
      ctx.fillStyle = "#333";
      ctx.strokeStyle = "#99a";
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      rows.list.forEach(function (i) {
        var y = M + (i + 0.5 - view.q0) * px;
        ctx.beginPath(); ctx.moveTo(M - 4, y); ctx.lineTo(M - 1, y); ctx.stroke();
        ctx.fillText(fitText(ctx, withTokens ? i + " " + o.label(i) : String(i), M - 8), M - 6, y);
      });
      ctx.textAlign = "left";
      cols.list.forEach(function (i) {
        var x = M + (i + 0.5 - view.k0) * px;
        ctx.beginPath(); ctx.moveTo(x, M - 4); ctx.lineTo(x, M - 1); ctx.stroke();
        ctx.save();
        ctx.translate(x, M - 6);
        ctx.rotate(-Math.PI / 2);
        ctx.fillText(fitText(ctx, withTokens ? i + " " + o.label(i) : String(i), M - 8), 0, 0);
        ctx.restore();
      });
      ctx.fillStyle = "#667";
      ctx.textAlign = "left";
      ctx.font = 11 + FONT;
      ctx.fillText("key →", 3, 9);
      ctx.fillText("query ↓", 3, 23);
      frame = document.createElement("canvas");
      frame.width = canvas.width;
      frame.height = canvas.height;
      frame.getContext("2d").drawImage(canvas, 0, 0);
      canvas.setAttribute("data-view", [Math.round(view.q0 * 100) / 100, Math.round(view.k0 * 100) / 100, Math.round(view.span * 100) / 100].join(" "));
      canvas.setAttribute("data-block", im.b);
      canvas.setAttribute("data-yticks", rows.list.join(" "));
      canvas.setAttribute("data-xticks", cols.list.join(" "));
      canvas.setAttribute("data-tokens", withTokens ? "1" : "0");
      canvas.setAttribute("data-drawn", "1");
      var last = function (s) { return Math.min(n - 1, Math.ceil(s + view.span) - 1); };
      range.textContent = "queries " + Math.floor(view.q0) + "–" + last(view.q0) + " × keys " + Math.floor(view.k0) + "–" + last(view.k0) +
        (im.b > 1 ? " (each cell the largest of " + im.b + "×" + im.b + ")" : "");
      inp.value = String(Math.round(Math.log(n / view.span) / Math.LN2 * 4));
      canvas.setAttribute("data-draw-ms", (performance.now() - t0).toFixed(1));
      if (hover) crosshair(hover.q, hover.k); else overlay();
    }

    /* the clean picture again, with the marked position's row and column (the page's focus) */
    function overlay() {
      var ctx = canvas.getContext("2d"), M = geo.M, P = geo.P, px = P / view.span;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(frame, 0, 0);
      ctx.setTransform(geo.dpr, 0, 0, geo.dpr, 0, 0);
      if (marked === null) return ctx;
      var y = M + (marked - view.q0) * px, x = M + (marked - view.k0) * px, w = Math.max(px, 1.5);
      bands(ctx, x, y, w, "rgba(36, 86, 199, 0.16)");
      ctx.strokeStyle = "rgba(36, 86, 199, 0.9)";
      ctx.lineWidth = 1;
      ctx.strokeRect(M, y, P, w);
      ctx.strokeRect(x, M, w, P);
      ctx.restore();
      ctx.fillStyle = "#2456c7";
      if (y + w > M && y < M + P) ctx.fillRect(M - 4, y, 3, w);  /* on the axes, when in view */
      if (x + w > M && x < M + P) ctx.fillRect(x, M - 4, w, 3);
      return ctx;
    }

    /* a translucent row band at y and column band at x, w wide, clipped to the matrix (the caller
       strokes what it wants inside the clip, then restores) */
    function bands(ctx, x, y, w, fill) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(geo.M, geo.M, geo.P, geo.P);
      ctx.clip();
      ctx.fillStyle = fill;
      ctx.fillRect(geo.M, y, geo.P, w);
      ctx.fillRect(x, geo.M, w, geo.P);
    }

    function crosshair(q, k) {
      var ctx = overlay(), M = geo.M, P = geo.P, px = P / view.span;
      var x = M + (k - view.k0) * px, y = M + (q - view.q0) * px, w = Math.max(px, 1);
      bands(ctx, x, y, w, "rgba(217, 72, 15, 0.12)");
      ctx.strokeStyle = "#d9480f";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(x - 0.75, y - 0.75, w + 1.5, w + 1.5);
      ctx.restore();
      /* the hovered positions on the axes */
      ctx.fillStyle = "#d9480f";
      ctx.fillRect(M - 4, y, 3, w);
      ctx.fillRect(x, M - 4, w, 3);
    }

    function at(ev) {  /* {q, k} under the pointer (over an axis: its row or column), or null off the canvas */
      var r = canvas.getBoundingClientRect(), s = geo.W / r.width;
      var x = (ev.clientX - r.left) * s - geo.M, y = (ev.clientY - r.top) * s - geo.M;
      if (x < -geo.M || y < -geo.M || x >= geo.W - geo.M || y >= geo.H - geo.M || (x < 0 && y < 0)) return null;
      x = Math.max(0, Math.min(geo.P - 0.01, x));
      y = Math.max(0, Math.min(geo.P - 0.01, y));
      var px = geo.P / view.span;
      return { q: Math.min(n - 1, Math.floor(view.q0 + y / px)), k: Math.min(n - 1, Math.floor(view.k0 + x / px)), x: x, y: y };
    }

    function hoverAt(ev) {
      var h = at(ev);
      if (!h) { leave(); return; }
      hover = h;
      crosshair(h.q, h.k);
      var im = geo.im, block = null;
      if (im.b > 1) {
        var r = Math.floor((h.q - im.qa) / im.b), c = Math.floor((h.k - im.ka) / im.b);
        block = { q0: im.qa + r * im.b, q1: Math.min(n, im.qa + (r + 1) * im.b) - 1, k0: im.ka + c * im.b,
                  k1: Math.min(n, im.ka + (c + 1) * im.b) - 1, value: im.cells[r * im.S + c] };
      }
      canvas.setAttribute("data-hover", h.q + " " + h.k);
      showTip(ev, o.tip(h.q, h.k, block));
    }
    function leave() {
      hover = null;
      if (frame) overlay();
      canvas.removeAttribute("data-hover");
      hideTip();
    }

    function setView(v, quiet) {
      view = clampView({ q0: v.q0, k0: v.k0, span: v.span });
      canvas.style.touchAction = view.span < n ? "none" : "";
      draw();
      if (!quiet && o.onview) o.onview({ q0: view.q0, k0: view.k0, span: view.span });
    }
    function zoomAround(factor, q, k) {  /* keep position (q, k) under the same pixel */
      var span = Math.max(n / maxZoom, Math.min(n, view.span / factor));
      setView({ q0: q - (q - view.q0) * span / view.span, k0: k - (k - view.k0) * span / view.span, span: span });
    }
    function zoomCentre(factor) { zoomAround(factor, view.q0 + view.span / 2, view.k0 + view.span / 2); }

    canvas.addEventListener("wheel", function (ev) {
      var h = at(ev);
      if (!h) return;
      ev.preventDefault();
      var px = geo.P / view.span;
      zoomAround(Math.pow(1.0018, -ev.deltaY), view.q0 + h.y / px, view.k0 + h.x / px);
      hoverAt(ev);
    }, { passive: false });
    canvas.addEventListener("pointerdown", function (ev) {
      var h = at(ev);
      if (!h) return;
      drag = { x: ev.clientX, y: ev.clientY, view: { q0: view.q0, k0: view.k0, span: view.span }, moved: false };
      if (canvas.setPointerCapture) canvas.setPointerCapture(ev.pointerId);
    });
    canvas.addEventListener("pointermove", function (ev) {
      if (drag) {
        var r = canvas.getBoundingClientRect(), px = geo.P / view.span * r.width / geo.W;
        var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        if (drag.moved && view.span < n) {
          setView({ q0: drag.view.q0 - dy / px, k0: drag.view.k0 - dx / px, span: drag.view.span });
          hideTip();
          return;
        }
      }
      hoverAt(ev);
    });
    canvas.addEventListener("pointerup", function (ev) {
      var was = drag;
      drag = null;
      if (was && !was.moved) hoverAt(ev);  /* a tap shows the tooltip */
    });
    canvas.addEventListener("pointerleave", function () { if (!drag) leave(); });
    canvas.addEventListener("dblclick", function () { setView({ q0: 0, k0: 0, span: n }); });
    canvas.addEventListener("keydown", function (ev) {  /* + - 0 zoom and fit, arrows pan a tenth of the view */
      var step = view.span / 10, moves = { ArrowUp: [-step, 0], ArrowDown: [step, 0], ArrowLeft: [0, -step], ArrowRight: [0, step] };
      if (ev.key === "+" || ev.key === "=") zoomCentre(2);
      else if (ev.key === "-") zoomCentre(0.5);
      else if (ev.key === "0") setView({ q0: 0, k0: 0, span: n });
      else if (moves[ev.key]) setView({ q0: view.q0 + moves[ev.key][0], k0: view.k0 + moves[ev.key][1], span: view.span });
      else return;
      ev.preventDefault();
    });
    out.onclick = function () { zoomCentre(0.5); };
    inn.onclick = function () { zoomCentre(2); };
    fit.onclick = function () { setView({ q0: 0, k0: 0, span: n }); };
    inp.addEventListener("input", function () { zoomCentre(view.span / (n / Math.pow(2, +inp.value / 4))); });
    if (window.ResizeObserver) {
      var width = 0;
      new ResizeObserver(function () {
        var w = Math.floor(canvas.clientWidth);
        if (w && Math.abs(w - width) > 1) { width = w; geo = null; draw(); }
      }).observe(canvas);
    }

    var api = {
      draw: function () { draw(); },
      setView: setView,
      view: function () { return { q0: view.q0, k0: view.k0, span: view.span }; },
      zoom: zoomCentre,
      hover: function (q, k) {  /* for tests: the tooltip of a cell, as hovering it would show */
        hover = { q: q, k: k };
        crosshair(q, k);
        return o.tip(q, k, null);
      },
      mark: function (pos) {  /* mark a position's row and column (null: none), under any hover */
        marked = pos === null || pos === undefined ? null : pos;
        canvas.setAttribute("data-marked", marked === null ? "" : String(marked));
        if (!frame) return;
        if (hover) crosshair(hover.q, hover.k); else overlay();
      },
      update: function (opts) { for (var key in opts) if (Object.prototype.hasOwnProperty.call(opts, key)) o[key] = opts[key]; draw(); }
    };
    canvas.__heatmap = api;
    canvas.setAttribute("tabindex", "0");
    draw();
    return api;
  }

  window.VizHeatmap = VizHeatmap;
})();
