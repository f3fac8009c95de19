"""Lineage rows in the store: upsert nodes by (kind, key), connect them, read them back.

Every function runs inside the caller's transaction. Lists are read and
written in chunks so a run that touched 100,000 tasks records in a few
statements, and stays within every database's parameter limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from common.lineage.model import LineageEdge, LineageNode, NodeKind
from common.store.records import now
from common.store.schema import lineage_edges, lineage_nodes

__all__ = ["NodeRow", "add_edges", "edges_from", "edges_to", "load_nodes", "nodes_of_project", "upsert_nodes"]

CHUNK = 500

# What upsert_nodes takes: kind, key, project id, display settings to merge, attrs to merge.
NodeRow = tuple[NodeKind, str, str | None, dict[str, str], dict[str, Any]]


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def upsert_nodes(conn: Connection, rows: Sequence[NodeRow]) -> dict[tuple[NodeKind, str], int]:
    """Insert the nodes not stored yet, merge new settings into the others; return their ids."""
    wanted: dict[tuple[NodeKind, str], NodeRow] = {}
    for row in rows:
        kind, key = row[0], row[1]
        old = wanted.get((kind, key))
        # The same node twice in one call: later settings win, as they would in two calls.
        wanted[(kind, key)] = row if old is None else (kind, key, row[2] or old[2], old[3] | row[3], old[4] | row[4])
    by_kind: dict[NodeKind, list[str]] = {}
    for kind, key in wanted:
        by_kind.setdefault(kind, []).append(key)
    found: dict[tuple[NodeKind, str], tuple[int, dict[str, str], dict[str, Any], str | None]] = {}
    for kind, keys in by_kind.items():
        for part in _chunks(keys):
            query = select(
                lineage_nodes.c.id,
                lineage_nodes.c.key,
                lineage_nodes.c.settings,
                lineage_nodes.c.attrs,
                lineage_nodes.c.project_id,
            ).where(lineage_nodes.c.kind == kind.value, lineage_nodes.c.key.in_(part))
            for nid, key, settings, attrs, pid in conn.execute(query):
                found[(kind, key)] = (nid, settings, attrs, pid)
    at = now()
    missing = [
        {
            "kind": k.value,
            "key": key,
            "project_id": r[2],
            "settings": r[3],
            "attrs": r[4],
            "created_at": at,
            "updated_at": at,
        }
        for (k, key), r in wanted.items()
        if (k, key) not in found
    ]
    for part in _chunks(missing, 5000):
        conn.execute(insert(lineage_nodes), list(part))
    for (kind, key), (nid, settings, attrs, pid) in found.items():
        _, _, project_id, new_settings, new_attrs = wanted[(kind, key)]
        merged_settings, merged_attrs = settings | new_settings, attrs | new_attrs
        if merged_settings != settings or merged_attrs != attrs or (project_id and not pid):
            conn.execute(
                update(lineage_nodes)
                .where(lineage_nodes.c.id == nid)
                .values(settings=merged_settings, attrs=merged_attrs, project_id=pid or project_id, updated_at=at)
            )
    ids = {k: v[0] for k, v in found.items()}
    if missing:
        for kind, keys in by_kind.items():
            new_keys = [key for key in keys if (kind, key) not in found]
            for part in _chunks(new_keys):
                query = select(lineage_nodes.c.id, lineage_nodes.c.key).where(
                    lineage_nodes.c.kind == kind.value, lineage_nodes.c.key.in_(part)
                )
                ids.update({(kind, str(row[1])): int(row[0]) for row in conn.execute(query)})
    return ids


def add_edges(
    conn: Connection,
    pairs: Sequence[tuple[int, int]],
    run_id: str | None,
    settings: dict[tuple[int, int], dict[str, str]],
) -> None:
    """Connect ``source -> target`` for each pair (once; a repeat only merges new card settings)."""
    unique = list(dict.fromkeys(p for p in pairs if p[0] != p[1]))
    existing: dict[tuple[int, int], tuple[int, dict[str, str]]] = {}
    sources = sorted({s for s, _ in unique})
    for part in _chunks(sources):
        query = select(
            lineage_edges.c.id, lineage_edges.c.source_id, lineage_edges.c.target_id, lineage_edges.c.settings
        ).where(lineage_edges.c.source_id.in_(part))
        for eid, s, t, st in conn.execute(query):
            existing[(s, t)] = (eid, st)
    at = now()
    rows = [
        {"source_id": s, "target_id": t, "run_id": run_id, "settings": settings.get((s, t), {}), "at": at}
        for s, t in unique
        if (s, t) not in existing
    ]
    for part in _chunks(rows, 5000):
        conn.execute(insert(lineage_edges), list(part))
    for pair, extra in settings.items():
        if pair in existing and extra:
            eid, old = existing[pair]
            if old | extra != old:
                conn.execute(update(lineage_edges).where(lineage_edges.c.id == eid).values(settings=old | extra))


def _node(row: Any) -> LineageNode:
    return LineageNode(
        id=row.id,
        kind=NodeKind(row.kind),
        key=row.key,
        project_id=row.project_id,
        settings=row.settings or {},
        attrs=row.attrs or {},
    )


def load_nodes(conn: Connection, ids: Iterable[int] | None = None) -> list[LineageNode]:
    """The nodes with these ids (every node when ``ids`` is None), in id order."""
    if ids is None:
        return [_node(r) for r in conn.execute(select(lineage_nodes).order_by(lineage_nodes.c.id))]
    out: list[LineageNode] = []
    for part in _chunks(sorted(set(ids))):
        out.extend(_node(r) for r in conn.execute(select(lineage_nodes).where(lineage_nodes.c.id.in_(part))))
    return sorted(out, key=lambda n: n.id)


def nodes_of_project(conn: Connection, project_id: str) -> list[int]:
    return list(conn.execute(select(lineage_nodes.c.id).where(lineage_nodes.c.project_id == project_id)).scalars())


def _edge(row: Any) -> LineageEdge:
    return LineageEdge(source=row.source_id, target=row.target_id, run_id=row.run_id, settings=row.settings or {})


def edges_from(conn: Connection, sources: Iterable[int] | None = None) -> list[LineageEdge]:
    """Edges leaving these nodes (every edge when ``sources`` is None)."""
    if sources is None:
        return [_edge(r) for r in conn.execute(select(lineage_edges).order_by(lineage_edges.c.id))]
    out: list[LineageEdge] = []
    for part in _chunks(sorted(set(sources))):
        out.extend(_edge(r) for r in conn.execute(select(lineage_edges).where(lineage_edges.c.source_id.in_(part))))
    return out


def edges_to(conn: Connection, targets: Iterable[int]) -> list[LineageEdge]:
    """Edges arriving at these nodes."""
    out: list[LineageEdge] = []
    for part in _chunks(sorted(set(targets))):
        out.extend(_edge(r) for r in conn.execute(select(lineage_edges).where(lineage_edges.c.target_id.in_(part))))
    return out
