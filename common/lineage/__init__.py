"""Lineage: what each run read and wrote, stored as a graph and drawn at three scopes."""

from common.lineage.graph import Scope, lineage_graph
from common.lineage.model import (
    Direction,
    LineageEdge,
    LineageGraph,
    LineageMeta,
    LineageNode,
    NodeKind,
    NodeSettings,
    Ref,
)
from common.lineage.recorder import Lineage, record_lineage, record_run_lineage
from common.lineage.refs import parse_ref
from common.lineage.render import FORMATS, render

__all__ = [
    "FORMATS",
    "Direction",
    "Lineage",
    "LineageEdge",
    "LineageGraph",
    "LineageMeta",
    "LineageNode",
    "NodeKind",
    "NodeSettings",
    "Ref",
    "Scope",
    "lineage_graph",
    "parse_ref",
    "record_lineage",
    "record_run_lineage",
    "render",
]
