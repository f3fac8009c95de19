"""A lineage view as plain JSON-ready data: what the JSON format and the HTML page both carry."""

from __future__ import annotations

from typing import Any

from common.lineage.model import LineageGraph, LineageNode

__all__ = ["graph_data", "node_ref"]


def node_ref(node_id: int) -> str:
    """The node's identifier in a drawing: ``n<id>``, or ``g<id>`` for a group card."""
    # Group cards have negative ids; identifiers must stay plain letters and digits.
    return f"n{node_id}" if node_id >= 0 else f"g{-node_id}"


def _node_data(n: LineageNode) -> dict[str, Any]:
    return {
        "id": node_ref(n.id),
        "kind": n.kind.value,
        "key": n.key,
        "project_id": n.project_id,
        "title": n.title,
        "subtitle": n.subtitle,
        "icon": n.icon,
        "settings": n.settings,
        "attrs": n.attrs,
    }


def graph_data(graph: LineageGraph) -> dict[str, Any]:
    """The view as plain JSON-ready data (what the JSON format and the HTML page carry)."""
    return {
        "scope": graph.scope,
        "nodes": [_node_data(n) for n in graph.nodes],
        "edges": [
            {"source": node_ref(e.source), "target": node_ref(e.target), "run_id": e.run_id, "settings": e.settings}
            for e in graph.edges
        ],
    }
