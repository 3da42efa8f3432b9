/* The app page: asks the JSON API, streams a job's events (EventSource resumes by itself with
   Last-Event-ID), and shows reports the server wrote in the viewer frame. Every text from the
   model or the store goes in with textContent, never as markup. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var state = { info: null, job: null, source: null, generation: null, started: 0, first: 0, last: 0, count: 0 };

  function status(text, isError) {
    var el = $("status");
    el.textContent = text;
    el.className = isError ? "error" : "muted";
  }

  function api(path, body) {
    var options = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    };
    return fetch(path, options).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) { throw new Error(data.error || ("HTTP " + r.status)); }
        return data;
      });
    });
  }

  function numberOf(id) {
    var v = $(id).value.trim();
    return v === "" ? null : Number(v);
  }

  function mode() {
    var checked = document.querySelector("input[name=mode]:checked");
    return checked ? checked.value : "probe";
  }

  function setBusy(busy) {
    $("generate").disabled = busy;
    $("cancel").disabled = !busy;
  }

  function band(p) { return p < 0.1 ? "p0" : p < 0.3 ? "p1" : p < 0.6 ? "p2" : "p3"; }

  function addToken(t) {
    var span = document.createElement("span");
    span.className = "tok " + band(t.prob);
    span.textContent = t.text;
    span.title = "step " + t.index + " · id " + t.id + " · " + t.readable + " · p = " + t.prob.toFixed(4);
    span.dataset.prob = String(t.prob);
    $("tokens").appendChild(span);
  }

  function follow(jobId, handlers) {
    if (state.source) { state.source.close(); }
    var source = new EventSource("/api/jobs/" + jobId + "/events");
    state.source = source;
    var on = function (name, fn) {
      source.addEventListener(name, function (e) { fn(JSON.parse(e.data)); });
    };
    on("queued", function (d) {
      status(d.position > 0 ? "queued: position " + d.position + (d.running ? " (another job is running)" : "") : "starting");
    });
    on("started", function () { status("running"); });
    on("warning", function (d) { status("warning: " + d.message); });
    on("progress", function (d) { status(d.stage); });
    on("token", handlers.token || function () {});
    var end = function (name) {
      on(name, function (d) { source.close(); state.source = null; handlers.end(name, d); });
    };
    end("done"); end("failed"); end("cancelled");
  }

  function generate() {
    var text = $("text").value;
    var body = {
      text: text, chat: mode() === "chat", max_new_tokens: numberOf("max_new_tokens"),
      temperature: numberOf("temperature"), top_k: numberOf("top_k"), top_p: numberOf("top_p"),
      repetition_penalty: numberOf("repetition_penalty"), no_repeat_ngram_size: numberOf("no_repeat_ngram_size"),
      seed: numberOf("seed"), stop: $("stop").value ? [$("stop").value] : []
    };
    Object.keys(body).forEach(function (k) { if (body[k] === null) { delete body[k]; } });
    $("prompt-text").textContent = text;
    $("tokens").textContent = "";
    $("timing").textContent = "";
    state.started = performance.now(); state.first = 0; state.count = 0;
    setBusy(true);
    api("/api/generate", body).then(function (r) {
      state.job = r.job; state.generation = r.job;
      follow(r.job, {
        token: function (t) {
          var now = performance.now();
          if (!state.first) { state.first = now; }
          state.last = now; state.count += 1;
          addToken(t);
        },
        end: function (name, d) {
          setBusy(false);
          state.job = null;
          if (name === "failed") { status(d.error, true); return; }
          var timing = "";
          if (state.first) {
            timing = "first token " + (state.first - state.started).toFixed(0) + " ms after Generate";
            if (state.count > 1) {
              timing += "; then " + ((state.last - state.first) / (state.count - 1)).toFixed(1) + " ms per token";
            }
          }
          $("timing").textContent = timing;
          status(name === "done" ? d.tokens + " tokens (" + d.stop_reason.replace(/_/g, " ") + ")" : "cancelled");
        }
      });
    }).catch(function (e) { setBusy(false); status(e.message, true); });
  }

  function cancel() {
    if (!state.job) { return; }
    api("/api/jobs/" + state.job + "/cancel", {}).catch(function (e) { status(e.message, true); });
  }

  function show(url, title) {
    $("viewer").src = url;
    $("viewer-title").textContent = title;
    $("viewer-open").href = url;
    $("viewer-open").hidden = false;
  }

  function runJob(path, body, what) {
    api(path, body).then(function (r) {
      follow(r.job, {
        end: function (name, d) {
          if (name !== "done") { status(what + " " + name + (d.error ? ": " + d.error : ""), name === "failed"); return; }
          status(what + " written" + (d.trace ? ": trace " + d.trace : ""));
          show(d.url, what + (d.trace ? " " + d.trace : ""));
          listTraces();
        }
      });
    }).catch(function (e) { status(e.message, true); });
  }

  function visualize() {
    var tag = $("tag").value.trim();
    var body = { tags: tag ? [tag] : [] };
    var generated = $("tokens").childNodes.length > 0 && state.generation;
    if (generated) { body.job = state.generation; } else { body.text = $("text").value; body.chat = mode() === "chat"; }
    runJob("/api/visualize", body, "report");
  }

  function ticked() {
    return Array.prototype.map.call(document.querySelectorAll("#traces input:checked"), function (c) { return c.value; });
  }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }

  function listTraces() {
    var q = new URLSearchParams();
    if ($("filter-tag").value.trim()) { q.append("tag", $("filter-tag").value.trim()); }
    if ($("filter-model").value.trim()) { q.append("model", $("filter-model").value.trim()); }
    api("/api/traces?" + q.toString()).then(function (r) {
      var body = document.querySelector("#traces tbody");
      body.textContent = "";
      r.traces.forEach(function (t) {
        var row = document.createElement("tr");
        var box = document.createElement("input");
        box.type = "checkbox"; box.value = t.id;
        box.addEventListener("change", function () { $("compare").disabled = ticked().length !== 2; });
        row.appendChild(document.createElement("td")).appendChild(box);
        cell(row, t.id, "id");
        cell(row, t.model);
        cell(row, t.probe, "probe").title = t.probe;
        cell(row, t.tags.concat(t.category ? [t.category] : []).join(", "));
        cell(row, t.created.replace("T", " ").slice(0, 16), "created");
        var td = cell(row, "");
        if (t.url) {
          var b = document.createElement("button");
          b.type = "button"; b.textContent = "show";
          b.addEventListener("click", function () { show(t.url, "report " + t.id); });
          td.appendChild(b);
        }
        body.appendChild(row);
      });
      $("compare").disabled = true;
    }).catch(function (e) { status(e.message, true); });
  }

  function compare() {
    var ids = ticked();
    if (ids.length === 2) { runJob("/api/compare", { a: ids[0], b: ids[1] }, "comparison"); }
  }

  function health() {
    api("/api/health").then(function (h) {
      $("queue").textContent = h.queue ? h.queue + " job(s) on the model" : "idle";
    }).catch(function () { $("queue").textContent = "server unreachable"; });
  }

  $("generate").addEventListener("click", generate);
  $("cancel").addEventListener("click", cancel);
  $("visualize").addEventListener("click", visualize);
  $("refresh").addEventListener("click", listTraces);
  $("compare").addEventListener("click", compare);
  $("text").addEventListener("input", function () { state.generation = null; });
  api("/api/info").then(function (info) {
    state.info = info;
    $("model").textContent = info.model + " (" + info.family + ", context " + info.n_ctx + ")";
    $("chat-mode").hidden = !info.chat;
    $("max_new_tokens").max = String(info.max_new_tokens);
  }).catch(function (e) { status(e.message, true); });
  listTraces();
  health();
  setInterval(health, 3000);
}());
