/* The generation view: step navigation (slider, step number, buttons, arrow keys), step details
   (candidates, logit lens), attention flow graph (prompt -> continuation: a weight threshold, one
   token's connections on click or Enter, Escape clears) and a side-by-side head comparison. Classic
   script, no network, no modules; reads the inline JSON in #generation-data. Text from the
   vocabulary is only ever set with textContent, never parsed as HTML. The graph's edges carry
   data-q/data-k/data-w (query, key, weight) and the svg data-step/-focus/-shown/-hidden, for tests. */
(function () {
  "use strict";
  var dataEl = document.getElementById("generation-data");
  if (!dataEl) { return; }
  var D = JSON.parse(dataEl.textContent);
  var N = D.steps.length;
  if (!N) { return; }
  var L = D.n_layer, H = D.n_head, P = D.prompt.length;
  var SVGNS = "http://www.w3.org/2000/svg";
  var PAL = window.__vizPalette;  // assets/palette.js: the colours the PNGs use
  var seq = D.prompt.concat(D.steps.map(function (s) { return s.id; }));  // ids by sequence position

  var state = { step: N - 1, layer: "mean", head: "mean", threshold: 0.02, split: false, all: false,
                focus: null, cursor: null, headsLayer: L - 1, timer: null };
  /* focus: the sequence position whose connections the graph keeps (null: all of the shown steps');
     cursor: the graph's node that takes the keyboard (one tab stop) */

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, attrs[k]); } }
    return e;
  }
  function tokenText(id) { var t = D.vocab[String(id)]; return t === undefined ? "<id " + id + ">" : t; }
  function probColour(p) {  // [background, text]: the sequential scale 0..1
    return [PAL.css(PAL.sequential(p)), PAL.ink("sequential", p, 0, 1)];
  }
  function fmt(p, digits) { return p.toFixed(digits === undefined ? 6 : digits); }
  function short(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

  /* ---- attention rows: uint8 codes scaled to each row's maximum ---- */
  var decoded = {};
  function codes(s) {
    if (!decoded[s]) {
      var bin = atob(D.steps[s].att), out = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
      decoded[s] = out;
    }
    return decoded[s];
  }
  function headRow(s, l, h) {  // Float64Array [T] for one layer and head
    var st = D.steps[s], T = st.T, c = codes(s), base = (l * H + h) * T, m = st.scale[l * H + h] / 255;
    var row = new Float64Array(T);
    for (var j = 0; j < T; j++) { row[j] = c[base + j] * m; }
    return row;
  }
  function row(s, layer, head) {  // mean over the "mean" axes
    var ls = layer === "mean" ? range(L) : [layer], hs = head === "mean" ? range(H) : [head];
    var T = D.steps[s].T, acc = new Float64Array(T), n = ls.length * hs.length;
    ls.forEach(function (l) { hs.forEach(function (h) {
      var r = headRow(s, l, h);
      for (var j = 0; j < T; j++) { acc[j] += r[j] / n; }
    }); });
    return acc;
  }
  function range(n) { var a = []; for (var i = 0; i < n; i++) { a.push(i); } return a; }
  function weights(s) {  // [{pos, w}] for the flow graph, normalised as asked
    var st = D.steps[s], r = row(s, state.layer, state.head), out = [], sp = 0, sg = 0, j;
    for (j = 0; j < st.T; j++) { if (st.cs + j < P) { sp += r[j]; } else { sg += r[j]; } }
    for (j = 0; j < st.T; j++) {
      var pos = st.cs + j, w = r[j];
      if (state.split) { w = pos < P ? (sp > 0 ? w / sp : 0) : (sg > 0 ? w / sg : 0); }
      out.push({ pos: pos, w: w });
    }
    return out;
  }

  /* ---- continuation and slider ---- */
  var gtoks = Array.prototype.slice.call(document.querySelectorAll("#gen-text .gtok"));
  gtoks.forEach(function (b) {
    b.addEventListener("click", function () { setStep(Number(b.getAttribute("data-step"))); });
  });
  var slider = $("step-slider");
  slider.addEventListener("input", function () { setStep(Number(slider.value)); });
  $("step-prev").addEventListener("click", function () { setStep(state.step - 1); });
  $("step-next").addEventListener("click", function () { setStep(state.step + 1); });
  $("step-play").addEventListener("click", function () {
    var button = $("step-play");
    if (state.timer) { clearInterval(state.timer); state.timer = null; button.textContent = "play"; return; }
    if (state.step >= N - 1) { setStep(0); }
    button.textContent = "pause";
    state.timer = setInterval(function () {
      if (state.step >= N - 1) { clearInterval(state.timer); state.timer = null; button.textContent = "play"; return; }
      setStep(state.step + 1);
    }, 250);
  });
  var number = $("step-number");
  number.addEventListener("input", function () {
    if (number.value !== "" && isFinite(Number(number.value))) { setStep(Math.round(Number(number.value))); }
  });
  number.addEventListener("change", function () { number.value = String(state.step); });
  document.addEventListener("keydown", function (e) {
    var t = e.target, tag = t && t.tagName;
    if (e.key === "Escape" && state.focus !== null && tag !== "SELECT" && tag !== "TEXTAREA") {
      e.preventDefault(); state.focus = null; drawFlow(); return;
    }
    if (t === slider || tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") { return; }
    var to = { ArrowLeft: state.step - 1, ArrowRight: state.step + 1, Home: 0, End: N - 1 }[e.key];
    if (to !== undefined) { e.preventDefault(); setStep(to); }
  });

  function stepLabel(s) { return "step " + s + " (token " + (s + 1) + " of " + N + ")"; }  /* steps count from 0 */
  function setStep(s, quiet) {
    s = Math.max(0, Math.min(N - 1, s));
    state.step = s;
    slider.value = String(s);
    if (document.activeElement !== number) { number.value = String(s); }
    $("step-label").textContent = stepLabel(s);
    gtoks.forEach(function (b, i) {
      b.classList.toggle("future", i > s);
      b.classList.toggle("current", i === s);
      b.setAttribute("aria-pressed", i === s ? "true" : "false");
    });
    drawDetail();
    drawFlow(!quiet);
    drawHeads();
  }

  /* ---- step details ---- */
  /* outside: how to show the chosen token when it is not among `pairs` ({rank, p}: its rank and
     probability in this distribution, either may be null when the record does not hold it) */
  function candidateTable(table, pairs, chosen, outside) {
    table.textContent = "";
    var head = el("tr");
    ["#", "token", "id", "probability", ""].forEach(function (h) { head.appendChild(el("th", "", h)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    function row(rank, id, p, cls, into) {
      var tr = el("tr", cls);
      tr.appendChild(el("td", "", rank));
      tr.appendChild(el("td")).appendChild(el("span", "tok", tokenText(id)));
      tr.appendChild(el("td", "", String(id)));
      tr.appendChild(el("td", "num", p === null ? "–" : fmt(p)));
      var bar = el("span", "bar");
      bar.style.width = ((p || 0) * 160).toFixed(1) + "px";
      tr.appendChild(el("td")).appendChild(bar);
      return (into || body).appendChild(tr);
    }
    var listed = false;
    pairs.forEach(function (pair, i) {
      listed = listed || pair[0] === chosen;
      row(String(i + 1), pair[0], pair[1], pair[0] === chosen ? "chosen" : "");
    });
    if (!pairs.length) { body.appendChild(el("tr")).appendChild(el("td", "", "no candidates")); }
    if (!listed && outside) {  /* the sampled token below the top: one more row, marked, in the table's foot */
      var tr = row(outside.rank === null ? "> " + pairs.length : String(outside.rank), chosen, outside.p, "chosen outside",
                   table.appendChild(el("tfoot")));
      tr.title = "the sampled token, outside the top " + pairs.length + " listed";
      tr.cells[1].appendChild(el("small", "mark", " sampled"));
    }
  }
  function drawDetail() {
    var s = state.step, st = D.steps[s];
    $("detail-step").textContent = String(s);
    $("detail-token").textContent = tokenText(st.id);
    $("detail-facts").textContent = "id " + st.id + " · model probability " + fmt(st.p) + " (rank " + st.rank +
      ", logit " + st.logit.toFixed(4) + ") · entropy " + st.H.toFixed(3) + " bits · probability under the distribution it was " +
      (D.greedy ? "chosen from (greedy: argmax) " : "drawn from ") + fmt(st.ps) + " · context positions " + st.cs + "–" +
      (st.cs + st.T - 1) + " (" + st.T + " tokens)" + (st.slid ? " · the context slid at this step: cache rebuilt" : "");
    candidateTable($("cand-before"), st.before, st.id, { rank: st.rank, p: st.p });
    candidateTable($("cand-after"), st.after, st.id, { rank: null, p: st.ps });
    var stages = $("cand-stages");
    stages.textContent = "";
    if (st.controls.length) {
      stages.appendChild(el("h3", "", "After each control, in the order applied"));
      var wrap = stages.appendChild(el("div", "columns"));
      st.controls.forEach(function (c) {
        var box = wrap.appendChild(el("div"));
        box.appendChild(el("h4", "", "after " + c[0]));
        candidateTable(box.appendChild(el("table", "next")), c[1], st.id, { rank: null, p: null });
      });
    }
    var lens = $("lens-table");
    lens.textContent = "";
    var head = el("tr");
    ["layer", "top tokens after this block (probability)", "chosen token: probability", "rank"].forEach(function (h) { head.appendChild(el("th", "", h)); });
    lens.appendChild(el("thead")).appendChild(head);
    var body = lens.appendChild(el("tbody"));
    st.lens.forEach(function (entry, layer) {
      var tr = body.appendChild(el("tr"));
      tr.appendChild(el("td", "", String(layer)));
      var cell = tr.appendChild(el("td"));
      entry[0].forEach(function (pair) {
        var chip = cell.appendChild(el("span", "chip" + (pair[0] === st.id ? " chosen" : "")));
        chip.appendChild(el("span", "tok", tokenText(pair[0])));
        chip.appendChild(document.createTextNode(" " + fmt(pair[1], 4)));
      });
      tr.appendChild(el("td", "num", fmt(entry[1])));
      tr.appendChild(el("td", "num", String(entry[2])));
    });
  }

  /* ---- attention flow graph ---- */
  var flowSvg = $("flow-svg");
  function fillSelect(select, label) {
    select.appendChild(new Option("mean over " + label, "mean"));
    var n = label === "layers" ? L : H;
    for (var i = 0; i < n; i++) { select.appendChild(new Option(String(i), String(i))); }
  }
  fillSelect($("flow-layer"), "layers");
  fillSelect($("flow-head"), "heads");
  $("flow-layer").addEventListener("change", function (e) { state.layer = e.target.value === "mean" ? "mean" : Number(e.target.value); drawFlow(); });
  $("flow-head").addEventListener("change", function (e) { state.head = e.target.value === "mean" ? "mean" : Number(e.target.value); drawFlow(); });
  $("flow-threshold").addEventListener("input", function (e) { state.threshold = Number(e.target.value); drawFlow(); });
  $("flow-split").addEventListener("change", function (e) { state.split = e.target.checked; drawFlow(); });
  $("flow-all").addEventListener("change", function (e) { state.all = e.target.checked; drawFlow(); });
  $("flow-reset").addEventListener("click", function () {
    state.focus = null; state.layer = "mean"; state.head = "mean"; state.threshold = 0.02; state.split = false; state.all = false;
    $("flow-layer").value = "mean"; $("flow-head").value = "mean"; $("flow-threshold").value = "0.02";
    $("flow-split").checked = false; $("flow-all").checked = false;
    drawFlow();
  });

  /* Layout: the prompt down the left edge, the generated tokens down a column at the right, leaving
     room right of it for the arcs between generated tokens; both fill the box's width (a phone too). */
  var ROW = 18, TOP = 24, LX = 4, W = 120, GAP = 260, ARC = 200;
  var LABEL = 38;  /* a weight's plate: five digits of 11 px monospace */
  function yOf(pos) { return TOP + (pos < P ? pos : pos - P) * ROW + ROW / 2; }
  function layoutFlow() {
    var width = Math.max(320, Math.floor((flowSvg.parentNode && flowSvg.parentNode.clientWidth) || 900) - 2);
    W = Math.round(Math.max(84, Math.min(150, width * 0.2)));
    ARC = Math.round(Math.max(36, Math.min(200, width * 0.14)));
    GAP = width - 2 * LX - 2 * W - ARC;
    return width;
  }
  /* scroll: keep the slider's token in view when the reader moves it, scrolling as little as
     possible (the prompt, at the top, stays in view as long as it can) */
  function followStep() {
    var wrap = flowSvg.parentNode, y = yOf(P + state.step);
    if (!wrap || state.focus !== null) { return; }
    if (y > wrap.scrollTop + wrap.clientHeight - ROW) { wrap.scrollTop = y - wrap.clientHeight + 2 * ROW; }
    else if (y < wrap.scrollTop + ROW) { wrap.scrollTop = Math.max(0, y - 2 * ROW); }
  }
  /* Which steps' rows the graph draws: the slider's step, or with "show all" every step; with a
     focused token, every step up to the slider (all steps with "show all"), filtered to the edges
     that touch the focused token. */
  function flowSteps() {
    var last = state.all ? N - 1 : state.step, out = [];
    for (var s = 0; s <= last; s++) {
      if (state.focus !== null || state.all || s === state.step) { out.push(s); }
    }
    return out;
  }
  function nodeName(pos) {
    return pos < P ? "prompt position " + pos : "step " + (pos - P);
  }
  /* focus: click a node (or Enter/Space on it) to keep only its connections, again (or Escape) to
     clear; a generated token after the slider moves the slider to it (its row is drawn from there) */
  function toggleFocus(pos) {
    state.focus = state.focus === pos ? null : pos;
    state.cursor = pos;
    if (state.focus !== null && pos >= P && pos - P > state.step && !state.all) { setStep(pos - P, true); }
    else { drawFlow(); }
  }
  /* keyboard: the graph is one tab stop (roving tabindex); ↑ ↓ move along the sequence, Enter or
     Space filters, Escape clears, ← → step as elsewhere on the page */
  var nodeEls = [];
  function moveCursor(pos) {
    pos = Math.max(0, Math.min(P + N - 1, pos));
    if (nodeEls[state.cursor]) { nodeEls[state.cursor].setAttribute("tabindex", "-1"); }
    state.cursor = pos;
    nodeEls[pos].setAttribute("tabindex", "0");
    nodeEls[pos].focus();
  }
  function drawFlow(follow) {
    $("flow-threshold-value").textContent = state.threshold.toFixed(3);
    var hadKeys = document.activeElement && document.activeElement.parentNode === flowSvg;
    var width = layoutFlow(), RX = LX + W + GAP, height = TOP + Math.max(P, N) * ROW + 10;
    flowSvg.textContent = "";
    flowSvg.setAttribute("width", width);
    flowSvg.setAttribute("height", height);
    flowSvg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var headP = svg("text", { x: LX, y: 14, "class": "colhead" }); headP.textContent = "prompt";
    var headG = svg("text", { x: RX, y: 14, "class": "colhead" }); headG.textContent = "generated";
    flowSvg.appendChild(headP); flowSvg.appendChild(headG);
    var edges = flowSvg.appendChild(svg("g", { "class": "edges" }));
    var focus = state.focus, shown = 0, hidden = 0, linked = {}, weightAt = {};
    var labelled = focus !== null || !state.all;  /* one weight per node: its edge's */
    flowSteps().forEach(function (s) {
      weights(s).forEach(function (e) {
        var q = P + s;
        if (focus !== null && q !== focus && e.pos !== focus) { return; }
        if (e.w < state.threshold || e.w <= 0) { hidden++; return; }
        var y2 = yOf(q), path, cls;
        if (e.pos < P) {
          var x1 = LX + W, y1 = yOf(e.pos), x2 = RX;
          path = "M" + x1 + "," + y1 + " C" + (x1 + GAP / 2) + "," + y1 + " " + (x2 - GAP / 2) + "," + y2 + " " + x2 + "," + y2;
          cls = "edge prompt-edge";
        } else {
          var xr = RX + W, ya = yOf(e.pos), bend = xr + 8 + Math.min(ARC - 12, Math.abs(y2 - ya) * 0.6);
          path = "M" + xr + "," + ya + " C" + bend + "," + ya + " " + bend + "," + y2 + " " + xr + "," + y2;
          cls = "edge gen-edge";
        }
        var p = svg("path", { d: path, "class": cls, "stroke-width": (0.5 + 4 * e.w).toFixed(2),
                              "stroke-opacity": Math.min(1, 0.15 + e.w).toFixed(3),
                              "data-q": q, "data-k": e.pos, "data-w": String(e.w) });
        var title = svg("title", {});
        title.textContent = tokenText(seq[q]) + " (step " + s + ") ← " + tokenText(seq[e.pos]) + " (position " + e.pos + "): " + e.w.toFixed(4);
        p.appendChild(title);
        edges.appendChild(p);
        linked[e.pos] = true; linked[q] = true;
        if (labelled) { weightAt[q === focus || focus === null ? e.pos : q] = e.w; }
        shown++;
      });
    });
    if (state.cursor === null || state.cursor >= P + N) { state.cursor = focus !== null ? focus : P + state.step; }
    nodeEls = [];
    function node(pos, x) {
      var isGen = pos >= P, s = pos - P;
      var g = svg("g", { "class": "node" + (isGen ? " gen" : " prompt") + (isGen && s > state.step && !state.all ? " future" : "") +
                         (isGen && s === state.step && !state.all ? " current" : "") +
                         (focus === pos ? " focus" : "") + (focus !== null && linked[pos] ? " linked" : ""),
                         "data-pos": pos, role: "button", tabindex: pos === state.cursor ? "0" : "-1",
                         "aria-pressed": focus === pos ? "true" : "false" });
      var fill = "#f4f5f7", ink = "#111";
      if (isGen) { var c = probColour(D.steps[s].p); fill = c[0]; ink = c[1]; }
      g.appendChild(svg("rect", { x: x, y: yOf(pos) - ROW / 2 + 1, width: W, height: ROW - 2, rx: 3, fill: fill }));
      var t = svg("text", { x: x + 4, y: yOf(pos) + 4, fill: ink });
      t.textContent = (isGen ? s : pos) + " " + short(tokenText(seq[pos]), Math.max(3, Math.floor((W - 8) / 7.3) - String(isGen ? s : pos).length - 1));
      g.appendChild(t);
      var name = (isGen ? "generated, step " + s + ", p = " + fmt(D.steps[s].p) : "prompt position " + pos) + ": " + tokenText(seq[pos]);
      var title = svg("title", {});
      title.textContent = name;
      g.appendChild(title);
      g.setAttribute("aria-label", name + (weightAt[pos] !== undefined ? "; attention " + weightAt[pos].toFixed(3) : ""));
      if (weightAt[pos] !== undefined) {  /* the weight beside the box: right of a prompt token, left of a generated one */
        var lx = isGen ? x - 3 - LABEL : x + W + 3;  /* on a white plate: edges end behind it */
        g.appendChild(svg("rect", { x: lx, y: yOf(pos) - ROW / 2 + 2, width: LABEL, height: ROW - 4, "class": "weight-bg" }));
        var label = svg("text", { x: lx + LABEL / 2, y: yOf(pos) + 4, "class": "weight", "text-anchor": "middle" });
        label.textContent = weightAt[pos].toFixed(3);
        g.appendChild(label);
      }
      g.addEventListener("click", function () { toggleFocus(pos); });
      g.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggleFocus(pos); }
        else if (e.key === "ArrowUp" || e.key === "ArrowDown") { e.preventDefault(); moveCursor(pos + (e.key === "ArrowUp" ? -1 : 1)); }
      });
      nodeEls[pos] = g;
      flowSvg.appendChild(g);
    }
    var pos;
    for (pos = 0; pos < P; pos++) { node(pos, LX); }
    for (pos = P; pos < P + N; pos++) { node(pos, RX); }
    if (hadKeys) { nodeEls[state.cursor].focus({ preventScroll: true }); }
    if (follow) { followStep(); }
    flowSvg.setAttribute("data-step", String(state.step));
    flowSvg.setAttribute("data-focus", focus === null ? "" : String(focus));
    flowSvg.setAttribute("data-shown", String(shown));
    flowSvg.setAttribute("data-hidden", String(hidden));
    var what = (state.layer === "mean" ? "mean over layers" : "layer " + state.layer) + ", " +
               (state.head === "mean" ? "mean over heads" : "head " + state.head);
    $("flow-status").textContent = shown + " edges ≥ " + state.threshold.toFixed(3) + ", " + hidden + " below it hidden (" + what +
      (state.split ? ", prompt and generated parts normalised separately" : "") + "); " +
      (focus !== null ? "showing only the connections of " + nodeName(focus) + " " + JSON.stringify(tokenText(seq[focus])) +
                        (state.all ? ", all steps" : ", steps 0–" + state.step) + " (click it again or press Escape)"
                      : (state.all ? "all steps" : "step " + state.step + " (move the slider, or tick show all)"));
  }

  /* ---- compare heads ---- */
  var headsLayer = $("heads-layer");
  for (var l = 0; l < L; l++) { headsLayer.appendChild(new Option("layer " + l, String(l))); }
  headsLayer.value = String(state.headsLayer);
  headsLayer.addEventListener("change", function () { state.headsLayer = Number(headsLayer.value); drawHeads(); });
  function drawHeads() {
    var s = state.step, st = D.steps[s], table = $("heads-table");
    $("heads-label").textContent = "step " + s + ", token " + tokenText(st.id);
    table.textContent = "";
    var head = el("tr");
    head.appendChild(el("th", "num", "pos"));
    head.appendChild(el("th", "", "context token"));
    var rows = [];
    for (var h = 0; h < H; h++) { head.appendChild(el("th", "num", "head " + h)); rows.push(headRow(s, state.headsLayer, h)); }
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    for (var j = 0; j < st.T; j++) {
      var pos = st.cs + j, tr = body.appendChild(el("tr", pos >= P ? "gen" : ""));
      tr.appendChild(el("td", "num", String(pos)));
      tr.appendChild(el("td")).appendChild(el("span", "tok", tokenText(seq[pos])));
      for (h = 0; h < H; h++) {
        var w = rows[h][j], td = el("td", "cell", (100 * w).toFixed(1));
        var colour = probColour(w);  // the snapshot PNGs' scale
        td.style.background = colour[0];
        td.style.color = colour[1];
        tr.appendChild(td);
      }
    }
  }

  setStep(N - 1, true);  /* opens at the last step, the graph scrolled to its top (the prompt) */
  var flowWidth = 0;
  window.addEventListener("resize", function () {
    var w = flowSvg.parentNode.clientWidth;
    if (Math.abs(w - flowWidth) > 4) { flowWidth = w; drawFlow(); }
  });
})();
