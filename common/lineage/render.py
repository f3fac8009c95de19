"""Draw a lineage view as text: Mermaid, Graphviz DOT or JSON (the HTML page is in html.py)."""

from __future__ import annotations

import json

from common.errors import InvalidInputError
from common.lineage.data import graph_data, node_ref
from common.lineage.html import to_html
from common.lineage.model import LineageGraph, NodeKind

__all__ = ["FORMATS", "render", "to_dot", "to_json", "to_mermaid"]

FORMATS = ("mermaid", "dot", "json", "html")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", " ")


_MERMAID_SHAPES: dict[NodeKind, tuple[str, str]] = {
    NodeKind.RUN: ("([", "])"),  # stadium: the run in the middle
    NodeKind.PROJECT: ("[[", "]]"),
    NodeKind.PROJECT_VERSION: ("[/", "/]"),
    NodeKind.DATASET: ("[(", ")]"),
    NodeKind.GROUP: ("{{", "}}"),
}


def to_mermaid(graph: LineageGraph) -> str:
    """A Mermaid flowchart, left to right."""
    lines = ["flowchart LR"]
    for n in graph.nodes:
        left, right = _MERMAID_SHAPES.get(n.kind, ("[", "]"))
        label = f"{_mermaid_text(n.title)}<br/><small>{_mermaid_text(n.subtitle)}</small>"
        lines.append(f'    {node_ref(n.id)}{left}"{label}"{right}')
    lines.extend(f"    {node_ref(e.source)} --> {node_ref(e.target)}" for e in graph.edges)
    for kind in sorted({n.kind for n in graph.nodes}, key=lambda k: k.value):
        members = ",".join(node_ref(n.id) for n in graph.nodes if n.kind is kind)
        lines.append(f"    class {members} {kind.value}")
    return "\n".join(lines) + "\n"


_DOT_SHAPES: dict[NodeKind, str] = {
    NodeKind.RUN: "ellipse",
    NodeKind.PROJECT: "box3d",
    NodeKind.PROJECT_VERSION: "tab",
    NodeKind.DATASET: "cylinder",
    NodeKind.FOLDER: "folder",
    NodeKind.FILE: "note",
    NodeKind.GROUP: "hexagon",
}


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def to_dot(graph: LineageGraph) -> str:
    """A Graphviz digraph (``dot -Tsvg``), left to right."""
    lines = [
        "digraph lineage {",
        "    rankdir=LR;",
        '    node [fontname="sans-serif", style=filled, fillcolor="#ffffff"];',
    ]
    for n in graph.nodes:
        shape = _DOT_SHAPES.get(n.kind, "box")
        fill = n.settings.get("icon_bg_color", "#e8f0fe" if n.kind is NodeKind.RUN else "#ffffff")
        label = f"{_dot_text(n.title)}\\n{_dot_text(n.subtitle)}"
        url = f', URL="{_dot_text(n.settings["url"])}"' if "url" in n.settings else ""
        lines.append(f'    {node_ref(n.id)} [label="{label}", shape={shape}, fillcolor="{_dot_text(fill)}"{url}];')
    lines.extend(f"    {node_ref(e.source)} -> {node_ref(e.target)};" for e in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json(graph: LineageGraph) -> str:
    return json.dumps(graph_data(graph), indent=2, sort_keys=True) + "\n"


def render(graph: LineageGraph, fmt: str, title: str = "annoflow lineage") -> str:
    """Render ``graph`` in ``fmt`` (mermaid, dot, json or html).

    Raises:
        InvalidInputError: the format is unknown.
    """
    match fmt:
        case "mermaid":
            return to_mermaid(graph)
        case "dot":
            return to_dot(graph)
        case "json":
            return to_json(graph)
        case "html":
            return to_html(graph, title)
    raise InvalidInputError(f"unknown lineage format {fmt!r}; use one of {', '.join(FORMATS)}")
