"""A self-contained HTML page that draws a lineage view in the browser.

Everything is inline (data, script, style) and the page's content security
policy forbids any fetch, so it works from a file, offline, behind any proxy.
The script lays the graph out in columns (inputs left of the runs that read
them, outputs right) and draws it as SVG.
"""

from __future__ import annotations

import html
import json

from common.lineage.data import graph_data
from common.lineage.model import LineageGraph

__all__ = ["to_html"]

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>__TITLE__</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
  header { padding: 12px 20px; background: #fff; border-bottom: 1px solid #dde1e7; }
  header h1 { font-size: 18px; margin: 0; }
  header small { color: #5b6475; }
  #canvas { overflow: auto; padding: 16px; }
  .lineage-node rect.card { fill: #fff; stroke: #c5cbd6; }
  .lineage-node.kind-run rect.card { fill: #eef4ff; stroke: #6f8fd8; }
  .lineage-node.kind-group rect.card { fill: #fff8e6; stroke: #d9a400; stroke-dasharray: 4 3; }
  .lineage-node text.title { font-size: 13px; font-weight: 600; }
  .lineage-node text.subtitle { font-size: 11px; fill: #5b6475; }
  .lineage-node text.glyph { font-size: 13px; font-weight: 700; text-anchor: middle; }
  .lineage-edge { fill: none; stroke: #8d96a8; stroke-width: 1.4; }
</style>
</head>
<body>
<header><h1>__TITLE__</h1><small id="summary">drawing...</small></header>
<div id="canvas"></div>
<noscript>This page draws the lineage graph with JavaScript; enable it, or use --format mermaid/dot/json.</noscript>
<script type="application/json" id="lineage-data">__DATA__</script>
<script>
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var GLYPHS = { project: "P", project_version: "V", dataset: "D", file: "F", folder: "\u25a4", task: "T",
                 job: "J", app: "A", run: "\u25b6", group: "\u03a3" };
  var W = 230, H = 56, GAPX = 90, GAPY = 22, PAD = 20;
  var data = JSON.parse(document.getElementById("lineage-data").textContent);
  var nodes = data.nodes, edges = data.edges, byId = {}, preds = {};
  nodes.forEach(function (n) { byId[n.id] = n; preds[n.id] = []; });
  edges.forEach(function (e) { if (preds[e.target]) preds[e.target].push(e.source); });

  // Column = longest path from a source; an edge closing a cycle (a run that
  // reads and writes the same project) is ignored for the layout only.
  var state = {}, rank = {};
  function rankOf(id) {
    if (state[id] === 2) return rank[id];
    if (state[id] === 1) return -1;
    state[id] = 1;
    var r = 0;
    preds[id].forEach(function (p) { if (byId[p]) r = Math.max(r, rankOf(p) + 1); });
    state[id] = 2; rank[id] = r;
    return r;
  }
  var columns = [];
  nodes.forEach(function (n) {
    var r = rankOf(n.id);
    (columns[r] = columns[r] || []).push(n);
  });
  var pos = {}, width = 0, height = 0;
  columns.forEach(function (col, c) {
    (col || []).forEach(function (n, i) {
      pos[n.id] = { x: PAD + c * (W + GAPX), y: PAD + i * (H + GAPY) };
      width = Math.max(width, pos[n.id].x + W + PAD);
      height = Math.max(height, pos[n.id].y + H + PAD + 50);
    });
  });

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, cls, x, y, value, max) {
    var t = el("text", { "class": cls, x: x, y: y }, parent);
    t.textContent = value.length > max ? value.slice(0, max - 1) + "\\u2026" : value;
    return t;
  }
  var svg = el("svg", { id: "lineage-svg", width: width, height: height, viewBox: "0 0 " + width + " " + height });
  var defs = el("defs", {}, svg);
  var marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7,
                              markerHeight: 7, orient: "auto-start-reverse" }, defs);
  el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8d96a8" }, marker);

  edges.forEach(function (e) {
    var a = pos[e.source], b = pos[e.target];
    if (!a || !b) return;
    var d;
    if (b.x > a.x) {
      var x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x2 - x1) / 2;
      d = "M " + x1 + " " + y1 + " C " + (x1 + mid) + " " + y1 + ", " + (x2 - mid) + " " + y2 + ", " + x2 + " " + y2;
    } else {
      // Back along a cycle: loop under the cards.
      var u1 = a.x + W / 2, v1 = a.y + H, u2 = b.x + W / 2, v2 = b.y + H;
      d = "M " + u1 + " " + v1 + " C " + u1 + " " + (v1 + 50) + ", " + u2 + " " + (v2 + 50) + ", " + u2 + " " + v2;
    }
    el("path", { "class": "lineage-edge", d: d, "marker-end": "url(#arrow)",
                 "data-source": e.source, "data-target": e.target }, svg);
  });

  nodes.forEach(function (n) {
    var p = pos[n.id], s = n.settings || {};
    var holder = svg;
    if (s.url) {
      holder = el("a", { href: s.url }, svg);
      el("title", {}, holder).textContent = s.url_title || s.url;
    }
    var g = el("g", { "class": "lineage-node kind-" + n.kind, id: "node-" + n.id, "data-kind": n.kind,
                      "data-key": n.key, transform: "translate(" + p.x + "," + p.y + ")" }, holder);
    el("title", {}, g).textContent = n.title + " (" + n.kind + " " + n.key + ")";
    el("rect", { "class": "card", width: W, height: H, rx: 8, ry: 8 }, g);
    el("circle", { cx: 26, cy: H / 2, r: 16, fill: s.icon_bg_color || "#e3e8f1" }, g);
    var glyph = s.icon ? s.icon.charAt(0).toUpperCase() : (GLYPHS[n.kind] || "?");
    if (n.kind === "file" && n.attrs && n.attrs.model_weight && !s.icon) glyph = "M";
    text(g, "glyph", 26, H / 2 + 5, glyph, 2)
      .setAttribute("fill", s.icon_color || "#38455f");
    text(g, "title", 50, 24, n.title, 24);
    text(g, "subtitle", 50, 42, n.subtitle + (s.url_title ? " \\u00b7 " + s.url_title : ""), 30);
  });
  document.getElementById("canvas").appendChild(svg);
  document.getElementById("summary").textContent =
    data.scope + " scope: " + nodes.length + " nodes, " + edges.length + " connections";
  document.body.setAttribute("data-drawn", String(nodes.length));
})();
</script>
</body>
</html>
"""


def to_html(graph: LineageGraph, title: str = "annoflow lineage") -> str:
    """One HTML page that draws ``graph`` with inline SVG and script; it loads nothing."""
    # "<" escaped so no title can close the <script> element the data sits in.
    data = json.dumps(graph_data(graph), sort_keys=True).replace("<", "\\u003c")
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", data)
