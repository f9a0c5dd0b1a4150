// attnviz HTML view: reads the JSON embedded in the page and draws it with DOM calls only.
// Every token is set through textContent, never parsed as HTML.
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("attnviz-data").textContent);
  var META = DATA.meta || {};
  var SENTENCES = DATA.sentences.filter(function (s) { return s !== null; });
  SENTENCES.forEach(function (s) { s.diag = diagnostics(s); });
  var WORD_START = "\u2581";
  var NON_WORDS = { "</s>": true, "<s>": true, "<pad>": true };
  var ROW_HEIGHT = 46;

  var state = {
    mode: META.mode === "scores" ? "scores" : "weights",
    level: META.level === "words" ? "words" : "pieces",
    values: false,
    query: "",
    sortKey: "id",
    sortDir: "asc",
    visible: SENTENCES.map(function (_, i) { return i; }),
    selected: SENTENCES.length ? 0 : -1,
    hyp: 0,
    pinned: null,
  };

  // ---- small DOM helpers ------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function $(id) { return document.getElementById(id); }

  function fmt(value, digits) {
    if (value === null || value === undefined || !isFinite(value)) return "n/a";
    return Number(value).toFixed(digits);
  }

  function shown(token) {
    // control characters would be invisible; an empty piece would vanish
    var text = String(token).replace(/[\u0000-\u001f\u007f-\u009f]/g, "\ufffd");
    return text === "" ? "\u2205" : text;
  }

  // ---- colours ----------------------------------------------------------------------------

  var BLUES = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
  var RDBU = [[5, 48, 97], [67, 147, 195], [247, 247, 247], [214, 96, 77], [103, 0, 31]];

  function ramp(stops, t) {
    t = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
    var low = Math.floor(t), high = Math.min(low + 1, stops.length - 1), f = t - low;
    var rgb = [0, 1, 2].map(function (k) {
      return Math.round(stops[low][k] + (stops[high][k] - stops[low][k]) * f);
    });
    return rgb;
  }

  function css(rgb) { return "rgb(" + rgb.join(",") + ")"; }

  function inkFor(rgb) {
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 140 ? "#fff" : "#111";
  }

  // weights: 0..1 sequential; scores and differences: diverging around 0 on ±max|value|
  function scaleFor(matrix, kind) {
    if (kind === "weights") return { lo: 0, hi: 1, color: function (v) { return ramp(BLUES, v); } };
    var limit = 0;
    matrix.forEach(function (row) {
      row.forEach(function (v) { if (isFinite(v)) limit = Math.max(limit, Math.abs(v)); });
    });
    limit = limit || 1;
    return {
      lo: -limit, hi: limit,
      color: function (v) { return ramp(RDBU, (v + limit) / (2 * limit)); },
    };
  }

  // ---- stored data --------------------------------------------------------------------------

  // base64 of little-endian float32 values -> numbers (NaN and infinities kept)
  function floats(text, count) {
    var binary = atob(text || "");
    var view = new DataView(new ArrayBuffer(binary.length));
    for (var k = 0; k < binary.length; k++) view.setUint8(k, binary.charCodeAt(k));
    var out = new Array(count);
    for (var n = 0; n < count; n++) out[n] = n * 4 + 4 <= binary.length ? view.getFloat32(n * 4, true) : NaN;
    return out;
  }

  function matrix(text, rows, cols) {
    var flat = floats(text, rows * cols), out = [];
    for (var i = 0; i < rows; i++) out.push(flat.slice(i * cols, i * cols + cols));
    return out;
  }

  // a hypothesis's numbers are decoded only when it is first drawn
  function hydrate(h) {
    if (h._ready) return h;
    var rows = h.tgt.length, cols = h.src.length;
    h.w = matrix(h.w, rows, cols);
    h.s = matrix(h.s, rows, cols);
    h.lp = floats(h.lp, rows);
    h.topk = validTopk(h.meta && h.meta.topk, rows);
    Object.defineProperty(h, "_ready", { value: true, enumerable: false });
    return h;
  }

  function validTopk(steps, rows) {
    if (!Array.isArray(steps) || steps.length !== rows) return null;
    var ok = steps.every(function (step) {
      return Array.isArray(step) && step.every(function (pair) {
        return Array.isArray(pair) && pair.length === 2 && typeof pair[1] === "number";
      });
    });
    return ok ? steps : null;
  }

  function diagnostics(s) {
    var found = s.diag || (s.hyps && s.hyps.length && s.hyps[0].meta ? s.hyps[0].meta.diagnostics : null);
    if (!found || typeof found !== "object" || Array.isArray(found)) return null;
    var kept = {}, any = false;
    Object.keys(found).forEach(function (k) {
      var v = found[k];
      if (typeof v === "number" || typeof v === "string" || Array.isArray(v)) { kept[k] = v; any = true; }
    });
    return any ? kept : null;
  }

  // ---- word level, as Alignment.to_words() ---------------------------------------------

  // rules as attnviz.alignment: sentencepiece (a piece starting with ▁ opens a word), bpe (a
  // piece ending in @@ joins the next one), whitespace (every token is a word)
  var BPE_JOINER = "@@";

  function opensWord(tokens, index, rule) {
    var token = tokens[index];
    if (index === 0 || NON_WORDS[token] === true || NON_WORDS[tokens[index - 1]] === true) return true;
    if (rule === "sentencepiece") return token.indexOf(WORD_START) === 0;
    if (rule === "bpe") return !endsWith(tokens[index - 1], BPE_JOINER);
    return true;
  }

  function endsWith(text, tail) { return text.length >= tail.length && text.slice(-tail.length) === tail; }

  function wordGroups(tokens, rule) {
    var groups = [];
    tokens.forEach(function (_, index) {
      if (opensWord(tokens, index, rule)) groups.push([index]);
      else groups[groups.length - 1].push(index);
    });
    return groups;
  }

  function joinPieces(tokens, rule) {
    if (rule === "bpe") {
      return tokens.map(function (t) { return endsWith(t, BPE_JOINER) ? t.slice(0, -BPE_JOINER.length) : t; }).join("");
    }
    if (rule === "whitespace") return tokens.join(" ");
    return tokens.join("").split(WORD_START).join("");
  }

  function toWords(h) {
    hydrate(h);
    if (h.level === "words") return h;
    if (h._words) return h._words;
    var rules = h.word_rules || ["sentencepiece", "sentencepiece"];
    var sg = wordGroups(h.src, rules[0]), tg = wordGroups(h.tgt, rules[1]);
    function sumCols(row, group) { return group.reduce(function (a, i) { return a + row[i]; }, 0); }
    var wCols = h.w.map(function (row) { return sg.map(function (g) { return sumCols(row, g); }); });
    var sCols = h.s.map(function (row) {
      return sg.map(function (g) { return sumCols(row, g) / g.length; });
    });
    function meanRows(m, group) {
      return m[0].map(function (_, j) {
        return group.reduce(function (a, i) { return a + m[i][j]; }, 0) / group.length;
      });
    }
    var w = tg.map(function (g) { return meanRows(wCols, g); }).map(function (row) {
      var total = row.reduce(function (a, b) { return a + b; }, 0);
      return row.map(function (v) { return total > 0 ? v / total : 0; });
    });
    var s = tg.map(function (g) { return meanRows(sCols, g); });
    var words = {
      translation: h.translation, score: h.score, rank: h.rank, level: "words",
      src: sg.map(function (g) { return joinPieces(g.map(function (i) { return h.src[i]; }), rules[0]); }),
      tgt: tg.map(function (g) { return joinPieces(g.map(function (i) { return h.tgt[i]; }), rules[1]); }),
      w: w, s: s,
      lp: tg.map(function (g) { return g.reduce(function (a, i) { return a + h.lp[i]; }, 0); }),
      pieces: tg, // target piece steps of each word, for the step panel
      pieceTokens: h.tgt,
      topk: h.topk,
    };
    if (h.tgt.length === 0 || h.src.length === 0) { words.w = []; words.s = []; }
    Object.defineProperty(h, "_words", { value: words, enumerable: false });
    return words;
  }

  function atLevel(h) {
    if (!h) return h;
    hydrate(h);
    return state.level === "words" ? toWords(h) : h;
  }

  // ---- the sentence list (virtual: only the rows in view exist) -------------------------

  function bestScore(s) {
    return s.hyps && s.hyps.length && typeof s.hyps[0].score === "number" ? s.hyps[0].score : null;
  }

  function sortValue(s, key) {
    if (key === "id") return s.id;
    if (key === "score") return bestScore(s);
    if (key === "length") return s.hyps && s.hyps.length ? s.hyps[0].src.length : 0;
    var name = key.slice(5); // "diag:<name>"
    var v = s.diag ? s.diag[name] : undefined;
    return typeof v === "number" && isFinite(v) ? v : null;
  }

  function searchText(s) {
    if (s._search === undefined) {
      var parts = [s.source];
      (s.hyps || []).forEach(function (h) { parts.push(h.translation); });
      (s.cmp || []).forEach(function (h) { parts.push(h.translation); });
      if (s.error) parts.push(s.error);
      Object.defineProperty(s, "_search", { value: parts.join("\n").toLowerCase(), enumerable: false });
    }
    return s._search;
  }

  function refilter() {
    var query = state.query.trim().toLowerCase();
    var rows = [];
    for (var i = 0; i < SENTENCES.length; i++) {
      if (!query || searchText(SENTENCES[i]).indexOf(query) >= 0) rows.push(i);
    }
    var key = state.sortKey, dir = state.sortDir === "desc" ? -1 : 1;
    rows.sort(function (a, b) {
      var va = sortValue(SENTENCES[a], key), vb = sortValue(SENTENCES[b], key);
      if (va === null && vb === null) return SENTENCES[a].id - SENTENCES[b].id;
      if (va === null) return 1; // sentences without the value go last either way
      if (vb === null) return -1;
      if (va !== vb) return va < vb ? -dir : dir;
      return SENTENCES[a].id - SENTENCES[b].id;
    });
    state.visible = rows;
    $("list-count").textContent = rows.length + " of " + SENTENCES.length + " sentences";
    $("list-spacer").style.height = rows.length * ROW_HEIGHT + "px";
    $("list").scrollTop = 0;
    drawList(true);
  }

  var drawnRange = [-1, -1];

  function drawList(force) {
    var list = $("list");
    var first = Math.max(0, Math.floor(list.scrollTop / ROW_HEIGHT) - 5);
    var last = Math.min(state.visible.length, first + Math.ceil((list.clientHeight || 600) / ROW_HEIGHT) + 10);
    if (!force && first === drawnRange[0] && last === drawnRange[1]) return;
    drawnRange = [first, last];
    var spacer = $("list-spacer");
    var fragment = document.createDocumentFragment();
    for (var n = first; n < last; n++) {
      var index = state.visible[n], s = SENTENCES[index];
      var row = el("div", "row" + (index === state.selected ? " selected" : "") + (s.error ? " error" : ""));
      row.style.top = n * ROW_HEIGHT + "px";
      row.dataset.index = String(index);
      row.dataset.id = String(s.id);
      row.appendChild(el("div", "src", shown(s.source)));
      var best = s.hyps && s.hyps.length ? s.hyps[0] : null;
      row.appendChild(el("div", "tgt", s.error ? s.error : best ? shown(best.translation) : ""));
      var meta = "#" + s.id;
      if (best && best.score !== null && !s.error) meta += "  " + fmt(best.score, 3);
      if (state.sortKey.indexOf("diag:") === 0) {
        var dv = sortValue(s, state.sortKey);
        meta += "  " + state.sortKey.slice(5) + " " + (dv === null ? "n/a" : fmt(dv, 3));
      }
      row.appendChild(el("span", "meta", meta));
      fragment.appendChild(row);
    }
    spacer.replaceChildren(fragment);
  }

  function select(index) {
    state.selected = index;
    state.hyp = 0;
    state.pinned = null;
    drawList(true);
    drawDetail();
  }

  // ---- heatmaps ---------------------------------------------------------------------------

  var tooltip;

  function showTooltip(lines, event) {
    tooltip.replaceChildren();
    lines.forEach(function (line, i) {
      if (i) tooltip.appendChild(document.createElement("br"));
      tooltip.appendChild(document.createTextNode(line));
    });
    tooltip.style.display = "block";
    moveTooltip(event);
  }

  function moveTooltip(event) {
    var x = event.clientX + 14, y = event.clientY + 14;
    var box = tooltip.getBoundingClientRect();
    if (x + box.width > window.innerWidth) x = Math.max(0, event.clientX - box.width - 10);
    if (y + box.height > window.innerHeight) y = Math.max(0, event.clientY - box.height - 10);
    tooltip.style.left = x + "px";
    tooltip.style.top = y + "px";
  }

  function hideTooltip() { tooltip.style.display = "none"; }

  function legend(scale, label) {
    var box = el("div", "legend");
    box.appendChild(el("span", null, fmt(scale.lo, 2)));
    var bar = el("span", "bar");
    var stops = [];
    for (var k = 0; k <= 8; k++) stops.push(css(scale.color(scale.lo + (scale.hi - scale.lo) * k / 8)));
    bar.style.background = "linear-gradient(to right," + stops.join(",") + ")";
    box.appendChild(bar);
    box.appendChild(el("span", null, fmt(scale.hi, 2)));
    box.appendChild(el("span", null, label));
    return box;
  }

  // spec: {src, tgt, matrix, kind, cellInfo(i, j) -> lines, rowInfo(i) -> lines, onRow(i), name}
  function heatmap(spec) {
    var table = el("table", "heatmap");
    table.dataset.name = spec.name;
    // short sentences get larger cells; long ones stay on screen
    var cellSize = spec.src.length <= 12 ? 34 : spec.src.length <= 30 ? 26 : 18;
    table.style.setProperty("--cell", cellSize + "px");
    var scale = scaleFor(spec.matrix, spec.kind);
    var head = el("tr");
    head.appendChild(el("th"));
    spec.src.forEach(function (token, j) {
      var th = el("th", "col");
      th.appendChild(el("span", null, shown(token)));
      th.dataset.j = String(j);
      head.appendChild(th);
    });
    var thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var body = el("tbody");
    spec.matrix.forEach(function (row, i) {
      var tr = el("tr");
      var th = el("th", "rowhead", shown(spec.tgt[i]));
      th.dataset.i = String(i);
      if (state.pinned === i && spec.pinnable) th.classList.add("pinned");
      tr.appendChild(th);
      var argmax = -1, best = -Infinity;
      row.forEach(function (v, j) { if (isFinite(v) && v > best) { best = v; argmax = j; } });
      row.forEach(function (v, j) {
        var td = el("td", "cell");
        td.dataset.i = String(i);
        td.dataset.j = String(j);
        if (!isFinite(v)) {
          td.classList.add("missing");
        } else {
          var rgb = scale.color(v);
          td.style.background = css(rgb);
          td.style.color = inkFor(rgb);
          if (state.values) td.textContent = spec.kind === "weights" ? fmt(v, 2).replace(/^0/, "") : fmt(v, 1);
          if (j === argmax && spec.kind !== "diff") td.classList.add("max");
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    table.addEventListener("mouseover", function (event) {
      var target = event.target.closest("td.cell, th.rowhead");
      if (!target) return hideTooltip();
      var i = Number(target.dataset.i);
      if (target.tagName === "TD") showTooltip(spec.cellInfo(i, Number(target.dataset.j)), event);
      else showTooltip(spec.rowInfo(i), event);
    });
    table.addEventListener("mousemove", function (event) {
      if (tooltip.style.display === "block") moveTooltip(event);
    });
    table.addEventListener("mouseleave", hideTooltip);
    if (spec.onRow) {
      table.addEventListener("click", function (event) {
        var target = event.target.closest("th.rowhead, td.cell");
        if (target) spec.onRow(Number(target.dataset.i));
      });
    }
    var wrap = el("div", "heatmap-wrap");
    wrap.appendChild(table);
    var label = spec.kind === "weights" ? "attention weight" : spec.kind === "scores" ? "raw score (pre-softmax)" : spec.diffLabel;
    wrap.appendChild(legend(scale, label));
    return wrap;
  }

  function prob(logprob) { return Math.exp(logprob); }

  function stepSteps(h, i) {
    // the decoder steps behind row i: one at piece level, the word's pieces at word level
    return h.level === "words" && h.pieces ? h.pieces[i] : [i];
  }

  function alternatives(h, step) {
    if (!h.topk || !h.topk[step]) return null;
    return h.topk[step];
  }

  function rowLines(h, i, modelName) {
    var lines = [];
    if (modelName) lines.push(modelName);
    lines.push("target " + shown(h.tgt[i]) + "  (row " + i + ")");
    lines.push("log-prob " + fmt(h.lp[i], 4) + "   p = " + fmt(prob(h.lp[i]), 4));
    stepSteps(h, i).forEach(function (step) {
      var alts = alternatives(h, step);
      if (!alts) return;
      var pieceTok = h.pieceTokens ? h.pieceTokens[step] : h.tgt[step];
      var text = alts.map(function (a) { return shown(a[0]) + " " + probText(a[1]); }).join(", ");
      lines.push((h.pieces ? shown(pieceTok) + ": " : "top-" + alts.length + ": ") + text);
    });
    return lines;
  }

  function cellLines(h, i, j, modelName) {
    var lines = [];
    if (modelName) lines.push(modelName);
    lines.push("source " + shown(h.src[j]) + "  (column " + j + ")");
    lines.push("target " + shown(h.tgt[i]) + "  (row " + i + ")");
    lines.push("weight " + fmt(h.w[i][j], 4));
    lines.push("raw score " + fmt(h.s[i][j], 4));
    return lines;
  }

  function matrixOf(h) { return state.mode === "scores" ? h.s : h.w; }

  function modelName(k) { return (META.models && META.models[k]) || (k ? "model B" : "model A"); }

  function hypPane(h, name, pinnable) {
    var pane = el("div", "pane");
    if (name) pane.appendChild(el("h3", null, name));
    if (!h || h.tgt.length === 0 || h.src.length === 0) {
      pane.appendChild(el("div", "note", "nothing to draw: the sentence or its translation is empty"));
      return pane;
    }
    pane.appendChild(heatmap({
      name: name || "main",
      src: h.src, tgt: h.tgt, matrix: matrixOf(h), kind: state.mode, pinnable: pinnable,
      cellInfo: function (i, j) { return cellLines(h, i, j, name); },
      rowInfo: function (i) { return rowLines(h, i, name); },
      onRow: pinnable ? function (i) { pinStep(i); } : null,
    }));
    return pane;
  }

  function sameTokens(a, b) {
    return a.length === b.length && a.every(function (t, k) { return t === b[k]; });
  }

  function matching(a, b) {
    return a && b && sameTokens(a.src, b.src) && sameTokens(a.tgt, b.tgt);
  }

  function diffPane(a, b, forced) {
    var pane = el("div", "pane diff");
    var heading = el("h3", null, modelName(0) + " \u2212 " + modelName(1));
    pane.appendChild(heading);
    if (!matching(a, b) && matching(a, forced)) {
      // the compared model said something else; forced to say the same, it can be compared
      b = forced;
      heading.textContent += " (" + modelName(1) + " forced to " + modelName(0) + "'s translation)";
    }
    if (!matching(a, b)) {
      pane.appendChild(el("div", "note",
        "no difference heatmap: the two models' tokens differ (different translations or " +
        "tokenizers); try the word level or another hypothesis"));
      return pane;
    }
    if (a.tgt.length === 0 || a.src.length === 0) return pane;
    var ma = matrixOf(a), mb = matrixOf(b);
    var diff = ma.map(function (row, i) {
      return row.map(function (v, j) { return v - mb[i][j]; }); // NaN where either is missing
    });
    var what = state.mode === "scores" ? "raw score" : "weight";
    pane.appendChild(heatmap({
      name: "diff", src: a.src, tgt: a.tgt, matrix: diff, kind: "diff",
      diffLabel: what + " difference",
      cellInfo: function (i, j) {
        return [
          "source " + shown(a.src[j]) + "  (column " + j + ")",
          "target " + shown(a.tgt[i]) + "  (row " + i + ")",
          modelName(0) + " " + what + " " + fmt(ma[i][j], 4),
          modelName(1) + " " + what + " " + fmt(mb[i][j], 4),
          "difference " + fmt(diff[i][j], 4),
        ];
      },
      rowInfo: function (i) {
        return ["target " + shown(a.tgt[i]), modelName(0) + " log-prob " + fmt(a.lp[i], 4),
          modelName(1) + " log-prob " + fmt(b.lp[i], 4)];
      },
    }));
    return pane;
  }

  // ---- step panel and the explained decoder step --------------------------------------

  function pinStep(i) {
    state.pinned = i;
    drawDetail();
    var panel = $("step-panel");
    if (panel) panel.scrollIntoView({ block: "nearest" });
  }

  var SOURCE_DIMS = 4; // per source position, fewer values fit a row

  function signed(v) { return (v >= 0 ? "+" : "") + fmt(v, 3); }

  function probText(p) { return p >= 1e-4 ? fmt(p, 4) : Number(p).toExponential(2); }

  function vectorText(values, total) {
    var text = values.map(signed).join("  ");
    return total > values.length ? text + "  \u2026 (" + values.length + " of " + total + ")" : text;
  }

  function section(title, shape, body) {
    var box = el("div", "xsec");
    var h = el("h4", null, title + "  ");
    if (shape) h.appendChild(el("span", "shape", shape));
    box.appendChild(h);
    if (body) box.appendChild(body);
    return box;
  }

  function explainView(x) {
    var root = el("div");
    var labels = x.labels || {};
    function label(key) { return labels[key] || { name: key, shape: "" }; }
    function shapeText(key) { var l = label(key); return (l.shape || "") + (l.size ? "  = " + l.size : ""); }
    root.appendChild(section(label("query").name, shapeText("query"), el("div", "vec", vectorText(x.query, x.sizes.Q))));
    if (x.projected_query) {
      root.appendChild(section(label("projected_query").name, shapeText("projected_query"),
        el("div", "vec", vectorText(x.projected_query, x.sizes.D))));
    }
    // scores and weights first, so they stay in view; then each intermediate's first values
    var table = el("table");
    var head = el("tr");
    var cols = [["j", null], ["source", null], ["score_j", shapeText("scores")], ["\u03b1_j", shapeText("weights")], ["", null]];
    var perSource = x.per_source || [];
    perSource.forEach(function (key) { cols.push([label(key).name, shapeText(key)]); });
    cols.forEach(function (c) {
      var th = el("th", null, c[0]);
      if (c[1]) { th.appendChild(el("br")); th.appendChild(el("span", "shape", c[1])); }
      head.appendChild(th);
    });
    table.appendChild(head);
    x.src.forEach(function (token, j) {
      var tr = el("tr");
      tr.appendChild(el("td", "num", j));
      tr.appendChild(el("td", null, shown(token)));
      tr.appendChild(el("td", "num", fmt(x.scores[j], 4)));
      tr.appendChild(el("td", "num", fmt(x.weights[j], 4)));
      var barCell = el("td");
      var bar = el("span", "pbar");
      bar.style.width = Math.round(60 * x.weights[j]) + "px";
      barCell.appendChild(bar);
      tr.appendChild(barCell);
      perSource.forEach(function (key) {
        var width = x.sizes[label(key).width] || x[key][j].length;
        tr.appendChild(el("td", "vec", vectorText(x[key][j].slice(0, SOURCE_DIMS), width)));
      });
      table.appendChild(tr);
    });
    root.appendChild(section(x.formula + ", then \u03b1 = softmax(score)", null, table));
    root.appendChild(section(label("context").name, shapeText("context"), el("div", "vec", vectorText(x.context, x.sizes.H))));
    root.appendChild(section(label("attentional").name, shapeText("attentional"), el("div", "vec", vectorText(x.attentional, x.sizes.Q))));
    var top = el("table");
    x.topk.forEach(function (pair, k) {
      var tr = el("tr");
      tr.appendChild(el("td", "num", k + 1));
      tr.appendChild(el("td", null, shown(pair[0])));
      tr.appendChild(el("td", "num", probText(pair[1])));
      var barCell = el("td");
      var bar = el("span", "pbar");
      bar.style.width = Math.round(60 * pair[1]) + "px";
      barCell.appendChild(bar);
      tr.appendChild(barCell);
      if (pair[0] === x.target) tr.appendChild(el("td", null, "\u2190 emitted"));
      top.appendChild(tr);
    });
    root.appendChild(section(label("topk").name, shapeText("topk"), top));
    return root;
  }

  function stepPanel(h, i, base) {
    var panel = el("div");
    panel.id = "step-panel";
    panel.appendChild(el("h3", null, "step " + i + ": " + shown(h.tgt[i])));
    rowLines(h, i, null).slice(1).forEach(function (line) { panel.appendChild(el("div", null, line)); });
    var steps = stepSteps(h, i);
    var explained = base && base.explain ? steps.filter(function (t) { return base.explain[t]; }) : [];
    var box = el("div");
    box.id = "explain-panel";
    if (explained.length) {
      explained.forEach(function (t) {
        var x = base.explain[t];
        box.appendChild(el("h3", null, "inside decoder step " + t + " (emits " + shown(x.target) + ")"));
        box.appendChild(explainView(x));
      });
    } else {
      box.appendChild(el("div", "note", base && base.explain
        ? "no breakdown stored for this step"
        : "no step breakdown stored for this sentence (attnviz html stores it)"));
    }
    panel.appendChild(box);
    return panel;
  }

  // ---- the detail view --------------------------------------------------------------------

  function segmented(name, options, current, onPick) {
    var seg = el("div", "seg");
    seg.setAttribute("role", "group");
    seg.dataset.name = name;
    options.forEach(function (opt) {
      var b = el("button", null, opt[1]);
      b.type = "button";
      b.dataset.value = opt[0];
      b.setAttribute("aria-pressed", String(opt[0] === current));
      if (opt[2]) b.disabled = true;
      b.addEventListener("click", function () { onPick(opt[0]); });
      seg.appendChild(b);
    });
    return seg;
  }

  function drawDetail() {
    var detail = $("detail");
    hideTooltip();
    if (state.selected < 0) {
      detail.replaceChildren(el("div", "empty", "no sentences"));
      return;
    }
    var s = SENTENCES[state.selected];
    var content = document.createDocumentFragment();
    var head = el("div", "sentence-head");
    head.appendChild(lineWith("sentence", "#" + s.id));
    head.appendChild(lineWith("source", shown(s.source)));
    if (s.error) {
      head.appendChild(lineWith("error", s.error));
      content.appendChild(head);
      detail.replaceChildren(content);
      return;
    }
    var hyps = s.hyps || [];
    if (state.hyp >= hyps.length) state.hyp = 0;
    var base = hyps[state.hyp];
    var piecesOnly = base && base.level === "words";
    var controls = el("div", "controls");
    controls.appendChild(segmented("mode", [["weights", "weights"], ["scores", "raw scores"]], state.mode,
      function (v) { state.mode = v; drawDetail(); }));
    controls.appendChild(segmented("level", [["pieces", "pieces", piecesOnly], ["words", "words"]],
      piecesOnly ? "words" : state.level, function (v) { state.level = v; state.pinned = null; drawDetail(); }));
    var valuesBox = el("label");
    var check = el("input");
    check.type = "checkbox";
    check.id = "values";
    check.checked = state.values;
    check.addEventListener("change", function () { state.values = check.checked; drawDetail(); });
    valuesBox.appendChild(check);
    valuesBox.appendChild(document.createTextNode(" values"));
    controls.appendChild(valuesBox);
    if (hyps.length > 1) {
      var tabs = el("div", "hyps");
      tabs.setAttribute("role", "tablist");
      hyps.forEach(function (h, k) {
        var tab = el("button", "hyp-tab", "#" + (k + 1) + "  " + fmt(h.score, 3));
        tab.type = "button";
        tab.setAttribute("role", "tab");
        tab.setAttribute("aria-selected", String(k === state.hyp));
        tab.dataset.rank = String(k);
        tab.addEventListener("click", function () { state.hyp = k; state.pinned = null; drawDetail(); });
        tabs.appendChild(tab);
      });
      controls.appendChild(tabs);
    }
    content.appendChild(controls);
    var h = atLevel(base);
    if (h) {
      head.appendChild(lineWith("translation", shown(h.translation)));
      head.appendChild(lineWith("score", fmt(h.score, 4) + "   hypothesis " + (state.hyp + 1) + " of " + hyps.length));
    }
    if (s.diag) {
      var names = Object.keys(s.diag);
      head.appendChild(el("div", "diag", names.map(function (k) {
        return k + " " + (typeof s.diag[k] === "number" ? fmt(s.diag[k], 3) : String(s.diag[k]));
      }).join("   ")));
    }
    content.insertBefore(head, controls);
    var panes = el("div", "panes");
    if (Array.isArray(s.cmp)) {
      // model B's hypothesis of the same rank (or its last one), side by side, then A − B
      var b = atLevel(s.cmp.length ? s.cmp[Math.min(state.hyp, s.cmp.length - 1)] : null);
      if (b) head.appendChild(lineWith(modelName(1), shown(b.translation) + "   score " + fmt(b.score, 4)));
      panes.appendChild(hypPane(h, modelName(0), true));
      panes.appendChild(hypPane(b, modelName(1), false));
      content.appendChild(panes);
      var diffRow = el("div", "panes");
      var forced = state.hyp === 0 && s.cmp_forced ? atLevel(s.cmp_forced) : null;
      diffRow.appendChild(diffPane(h, b, forced));
      content.appendChild(diffRow);
    } else {
      panes.appendChild(hypPane(h, null, true));
      content.appendChild(panes);
    }
    if (h && state.pinned !== null && state.pinned < h.tgt.length) {
      content.appendChild(stepPanel(h, state.pinned, base));
    } else if (h && h.tgt.length) {
      content.appendChild(el("div", "note", "hover a cell for its numbers; click a row for that step"));
    }
    detail.replaceChildren(content);
  }

  function lineWith(label, text) {
    var line = el("div", "line");
    line.appendChild(el("span", "label", label));
    line.appendChild(el("span", "value", text));
    return line;
  }

  // ---- start ------------------------------------------------------------------------------

  function sortOptions() {
    var select = $("sort-key");
    var options = [["id", "input order"], ["score", "score"], ["length", "source length"]];
    var keys = {};
    SENTENCES.forEach(function (s) {
      if (s.diag) Object.keys(s.diag).forEach(function (k) { if (typeof s.diag[k] === "number") keys[k] = true; });
    });
    Object.keys(keys).sort().forEach(function (k) { options.push(["diag:" + k, k]); });
    options.forEach(function (o) {
      var opt = el("option", null, o[1]);
      opt.value = o[0];
      select.appendChild(opt);
    });
  }

  function start() {
    tooltip = $("tooltip");
    var title = META.title || "attnviz";
    $("title").textContent = title;
    $("models").textContent = (META.models || []).join("  vs  ");
    sortOptions();
    var timer = null;
    $("search").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { state.query = $("search").value; refilter(); }, 120);
    });
    $("sort-key").addEventListener("change", function () {
      state.sortKey = $("sort-key").value;
      // scores: best first; diagnostics and the rest: largest first, except input order
      state.sortDir = state.sortKey === "id" ? "asc" : "desc";
      $("sort-dir").dataset.dir = state.sortDir;
      $("sort-dir").textContent = state.sortDir === "asc" ? "\u2191 ascending" : "\u2193 descending";
      refilter();
    });
    $("sort-dir").addEventListener("click", function () {
      state.sortDir = state.sortDir === "asc" ? "desc" : "asc";
      $("sort-dir").dataset.dir = state.sortDir;
      $("sort-dir").textContent = state.sortDir === "asc" ? "\u2191 ascending" : "\u2193 descending";
      refilter();
    });
    $("list").addEventListener("scroll", function () { drawList(false); });
    $("list").addEventListener("click", function (event) {
      var row = event.target.closest(".row");
      if (row) select(Number(row.dataset.index));
    });
    window.addEventListener("resize", function () { drawList(true); });
    // ↑/↓ (or k/j) move through the listed sentences, outside text fields
    document.addEventListener("keydown", function (event) {
      var tag = event.target && event.target.tagName;
      if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || event.altKey || event.ctrlKey || event.metaKey) return;
      var step = event.key === "ArrowDown" || event.key === "j" ? 1 : event.key === "ArrowUp" || event.key === "k" ? -1 : 0;
      if (!step || !state.visible.length) return;
      event.preventDefault();
      var at = state.visible.indexOf(state.selected);
      var next = state.visible[Math.min(Math.max(at + step, 0), state.visible.length - 1)];
      select(next);
      var list = $("list"), top = state.visible.indexOf(next) * ROW_HEIGHT;
      if (top < list.scrollTop || top + ROW_HEIGHT > list.scrollTop + list.clientHeight) {
        list.scrollTop = top - list.clientHeight / 2;
        drawList(false);
      }
    });
    refilter();
    drawDetail();
    document.body.dataset.ready = "1";
    window.attnvizReadyAt = performance.now();
  }

  start();
})();
