// Steps through the trace embedded in #trace-data: the evaluation node by
// node, a forward sweep for the chosen input, the reverse sweep edge by
// edge. The state lives in the URL: #mode=eval|forward|reverse&step=K[&wrt=NAME].
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("trace-data").textContent);
  var N = D.nodes;
  var ops = [], active = [];
  N.forEach(function (n, k) {
    if (n.kind === "op") { ops.push(k); if (n.active) active.push(k); }
  });
  var out = N.length - 1;
  var state = { mode: "eval", step: 0, sweep: 0 };

  // numbers as the table prints them: up to 6 significant digits, never -0
  function num(v) {
    if (v === null) return "nan";
    if (v === 0) return "0";
    var s = Number(v.toPrecision(6)).toString();
    return s.replace(/e([+-])(\d)$/, "e$10$2");
  }
  function nums(a) {
    if (a.length === 1) return num(a[0]);
    var shown = a.slice(0, 3).map(function (v) { return Number(v.toPrecision(4)).toString(); });
    return "[" + shown.join(", ") + (a.length > 3 ? ", \u2026] (" + a.length + ")" : "]");
  }
  function full(a) { return a.map(function (v) { return v === null ? "nan" : String(v); }).join(" "); }
  function el(id) { return document.getElementById(id); }
  function setText(id, text, value) {
    var e = el(id);
    if (!e) return;
    e.textContent = text;
    if (value) e.setAttribute("data-value", full(value)); else e.removeAttribute("data-value");
  }
  function cls(id, name, on) { var e = el(id); if (e) e.classList.toggle(name, !!on); }

  function last() {
    if (state.mode === "eval") return ops.length;
    if (state.mode === "forward") return active.length;
    return D.steps.length;
  }

  function parseHash() {
    var h = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) h[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1));
    });
    state.mode = ["eval", "forward", "reverse"].indexOf(h.mode) >= 0 ? h.mode : "eval";
    var w = D.sweeps.indexOf(h.wrt);
    state.sweep = w >= 0 ? w : 0;
    var s = parseInt(h.step, 10);
    state.step = isNaN(s) ? 0 : Math.max(0, Math.min(s, last()));
  }

  function writeHash() {
    var h = "#mode=" + state.mode + "&step=" + state.step;
    if (state.mode === "forward") h += "&wrt=" + encodeURIComponent(D.sweeps[state.sweep]);
    if (location.hash !== h) history.replaceState(null, "", h);
  }

  function clearAll() {
    N.forEach(function (n, k) {
      cls("n" + k, "cur", false); cls("n" + k, "done", false); cls("n" + k, "off", false);
      setText("v" + k, ""); setText("d" + k, "");
      n.edges.forEach(function (e) { cls("e" + e, "cur", false); cls("e" + e, "off", false); setText("l" + e, ""); });
    });
  }

  function showValues(upTo) { // values of inputs, and of ops before upTo
    N.forEach(function (n, k) {
      if (n.kind === "const") return;
      var known = n.kind === "input" || ops.indexOf(k) < upTo;
      setText("v" + k, known ? "= " + nums(n.value) : "= ?", known ? n.value : null);
    });
  }

  function localText(n, i) {
    var j = n.jac[i];
    if (j === null) return "";
    return j.length === 1 ? num(j[0]) : "J";
  }

  function renderEval(status) {
    showValues(state.step);
    ops.forEach(function (k, i) { cls("n" + k, "off", i >= state.step); });
    if (state.step > 0) {
      var k = ops[state.step - 1], n = N[k];
      cls("n" + k, "cur", true);
      n.edges.forEach(function (e) { cls("e" + e, "cur", true); });
      status.push(n.text + " = " + nums(n.value));
      return { node: k, value: n.value };
    }
    status.push("the inputs; step forward to evaluate the ops in order");
    return null;
  }

  function renderForward(status) {
    var s = state.sweep, wrt = D.sweeps[s];
    showValues(ops.length);
    N.forEach(function (n, k) {
      if (!n.active) { cls("n" + k, "off", n.kind !== "const"); return; }
      if (n.kind === "input") setText("d" + k, "\u1e6b = " + nums(n.tangent[s]), n.tangent[s]);
    });
    active.forEach(function (k, i) {
      var n = N[k];
      if (i < state.step) setText("d" + k, "\u1e6b = " + nums(n.tangent[s]), n.tangent[s]);
      else setText("d" + k, "\u1e6b = ?");
      if (i < state.step) n.edges.forEach(function (e, slot) { setText("l" + e, localText(n, slot)); });
    });
    if (state.step > 0) {
      var k = active[state.step - 1], n = N[k];
      cls("n" + k, "cur", true);
      n.edges.forEach(function (e, slot) { if (n.jac[slot] !== null) cls("e" + e, "cur", true); });
      status.push("d" + n.label + "/d" + wrt + " = " + nums(n.tangent[s]));
      return { node: k, value: n.tangent[s] };
    }
    status.push("seed: d" + wrt + "/d" + wrt + " = 1, every other input's tangent 0");
    return null;
  }

  function renderReverse(status) {
    showValues(ops.length);
    var adj = N.map(function () { return null; }), parts = N.map(function () { return []; });
    adj[out] = [1];
    for (var i = 0; i < state.step; i++) {
      var st = D.steps[i];
      adj[st.to] = st.after;
      parts[st.to].push(nums(st.contrib));
    }
    N.forEach(function (n, k) {
      if (!n.active) { cls("n" + k, "off", n.kind !== "const"); return; }
      if (adj[k] === null) { setText("d" + k, "\u1e21 = ?"); return; }
      var sum = parts[k].length > 1 ? " (" + parts[k].join(" + ") + ")" : "";
      setText("d" + k, "\u1e21 = " + nums(adj[k]) + sum, adj[k]);
    });
    for (i = 0; i < state.step; i++) {
      var e = D.steps[i];
      setText("l" + e.edge, localText(N[e.from], e.slot));
    }
    if (state.step > 0) {
      var cur = D.steps[state.step - 1], to = N[cur.to], from = N[cur.from];
      cls("n" + cur.to, "cur", true);
      cls("e" + cur.edge, "cur", true);
      var jl = from.jac[cur.slot];
      var local = jl.length === 1 ? num(jl[0]) : "J^T";
      setText("l" + cur.edge, "+= " + local + "\u00b7" + nums(adj[cur.from]) + " = " + nums(cur.contrib));
      var sym = jl.length === 1 ? "\u2202" + from.label + "/\u2202" + to.label
        : "J(" + from.label + ", " + to.label + ")^T";
      status.push("\u1e21_" + to.label + " += " + sym + "\u00b7\u1e21_" + from.label + " = " + nums(cur.contrib) + "  \u2192  \u1e21_" + to.label +
        " = " + nums(cur.after));
      return { node: cur.to, value: cur.after };
    }
    status.push("seed: \u1e21_" + N[out].label + " = 1 at the output");
    return null;
  }

  function renderTable() {
    var t = el("table"), rows;
    if (state.mode === "eval") rows = D.rows.eval;
    else if (state.mode === "forward") rows = D.rows.forward[state.sweep];
    else rows = D.rows.reverse;
    // the first line is the section's heading, then one line per step
    // (reverse: the seed line "g_out = 1" first), forward: a closing line
    var first = state.mode === "reverse" ? 2 : 1;
    t.textContent = "";
    rows.forEach(function (line, i) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      td.textContent = line;
      tr.appendChild(td);
      if (i === 0) tr.className = "head";
      else if (i >= first && i - first === state.step - 1) tr.className = "cur";
      else if (i >= first && i - first >= state.step && i - first < last()) tr.className = "later";
      t.appendChild(tr);
    });
  }

  function render() {
    clearAll();
    var status = [], shown;
    if (state.mode === "eval") shown = renderEval(status);
    else if (state.mode === "forward") shown = renderForward(status);
    else shown = renderReverse(status);
    renderTable();
    var st = el("status");
    var sweep = state.mode === "forward" ? " (sweep " + (state.sweep + 1) + " of " + D.sweeps.length +
      ": the tangent of " + D.sweeps[state.sweep] + ")" : "";
    st.textContent = state.mode + sweep + ", step " + state.step + " of " + last() + ": " +
      status.join(" ");
    st.setAttribute("data-mode", state.mode);
    st.setAttribute("data-step", String(state.step));
    if (shown) {
      st.setAttribute("data-node", N[shown.node].label);
      st.setAttribute("data-value", full(shown.value));
    } else {
      st.removeAttribute("data-node");
      st.removeAttribute("data-value");
    }
    ["eval", "forward", "reverse"].forEach(function (m) { cls("b-" + m, "on", state.mode === m); });
    el("wrt").style.display = state.mode === "forward" ? "" : "none";
    el("wrt").value = String(state.sweep);
    writeHash();
  }

  function go(mode, step, sweep) {
    state.mode = mode;
    if (sweep !== undefined) state.sweep = sweep;
    state.step = Math.max(0, Math.min(step, last()));
    render();
  }

  var sel = el("wrt");
  D.sweeps.forEach(function (name, s) {
    var o = document.createElement("option");
    o.value = String(s);
    o.textContent = "tangent of " + name;
    sel.appendChild(o);
  });
  sel.addEventListener("change", function () { go("forward", 0, parseInt(sel.value, 10)); });
  ["eval", "forward", "reverse"].forEach(function (m) {
    el("b-" + m).addEventListener("click", function () { go(m, 0); });
  });
  el("b-prev").addEventListener("click", function () { go(state.mode, state.step - 1); });
  el("b-next").addEventListener("click", function () { go(state.mode, state.step + 1); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "ArrowRight") go(state.mode, state.step + 1);
    else if (e.key === "ArrowLeft") go(state.mode, state.step - 1);
    else if (e.key === "Home") go(state.mode, 0);
    else if (e.key === "End") go(state.mode, last());
    else if (e.key === "e") go("eval", 0);
    else if (e.key === "f") go("forward", 0);
    else if (e.key === "r") go("reverse", 0);
    else if (e.key === "ArrowDown" && state.mode === "forward") go("forward", 0, (state.sweep + 1) % D.sweeps.length);
    else if (e.key === "ArrowUp" && state.mode === "forward") go("forward", 0, (state.sweep + D.sweeps.length - 1) % D.sweeps.length);
    else return;
    e.preventDefault();
  });
  window.addEventListener("hashchange", function () { parseHash(); render(); });
  var c = D.cost;
  el("cost").textContent = "cost: the evaluation runs " + c.ops + " primitives; forward mode needs " +
    c.sweeps + " sweep" + (c.sweeps === 1 ? "" : "s") + " (one per input element), " + c.forward +
    " tangent rules; reverse mode 1 sweep, " + c.reverse + " adjoint rules";
  parseHash();
  render();
})();
