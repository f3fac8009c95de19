"""Views of the lineage graph at three scopes: workspace, project and task.

A scope picks the nodes that belong to it, then keeps their whole history:
everything upstream (what they were made from) and downstream (what was made
from them), however far and whichever project it lives in. Scopes only leave
out what is unconnected; they never cut a chain of connections.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import Connection, select

from common.errors import InvalidInputError
from common.lineage.model import LineageEdge, LineageGraph, LineageNode, NodeKind
from common.lineage.repository import edges_from, edges_to, load_nodes, nodes_of_project
from common.store import Store
from common.store.schema import events, lineage_nodes

__all__ = ["Scope", "lineage_graph"]


class Scope(StrEnum):
    """How much of the graph a view shows."""

    WORKSPACE = "workspace"  # every node
    PROJECT = "project"  # one project's nodes and their history (the default)
    TASK = "task"  # what touched one task


def _walk(conn: Connection, start: Iterable[int], forward: bool) -> set[int]:
    """Every node reachable from ``start`` along (``forward``) or against the edges."""
    seen = set(start)
    frontier = set(seen)
    while frontier:
        found = edges_from(conn, frontier) if forward else edges_to(conn, frontier)
        nxt = {e.target if forward else e.source for e in found} - seen
        seen |= nxt
        frontier = nxt
    return seen


def _node_ids(conn: Connection, kind: NodeKind, keys: Iterable[str]) -> dict[str, int]:
    wanted = list(keys)
    if not wanted:
        return {}
    query = select(lineage_nodes.c.key, lineage_nodes.c.id).where(
        lineage_nodes.c.kind == kind.value, lineage_nodes.c.key.in_(wanted)
    )
    return {str(k): int(i) for k, i in conn.execute(query)}


def _edges_within(conn: Connection, ids: set[int]) -> list[LineageEdge]:
    return [e for e in edges_from(conn, ids) if e.target in ids]


def lineage_graph(
    store: Store,
    scope: Scope | str = Scope.PROJECT,
    project: str | None = None,
    task: str | None = None,
    collapse_tasks: int = 25,
) -> LineageGraph:
    """The lineage view at ``scope``.

    ``collapse_tasks``: a run connected to more tasks than this draws them as one
    group card (a ToTask run over 100,000 tasks stays readable); 0 never folds.

    Raises:
        InvalidInputError: the scope is unknown, or lacks the project or task it needs.
        NotFoundError: the project or task does not exist.
    """
    try:
        scope = Scope(scope)
    except ValueError as e:
        raise InvalidInputError(f"unknown scope {scope!r}; use workspace, project or task") from e
    if scope is Scope.PROJECT and not project:
        raise InvalidInputError("the project scope needs a project: pass --project NAME (or --scope workspace)")
    if scope is Scope.TASK and not task:
        raise InvalidInputError("the task scope needs a task: pass --task UUID")
    if scope is Scope.WORKSPACE:
        with store.read() as conn:
            graph = LineageGraph(scope=scope.value, nodes=load_nodes(conn), edges=edges_from(conn))
    elif scope is Scope.PROJECT:
        pid = store.get_project(project or "").id
        with store.read() as conn:
            focus = set(nodes_of_project(conn, pid))
            ids = _walk(conn, focus, True) | _walk(conn, focus, False)
            graph = LineageGraph(scope=scope.value, nodes=load_nodes(conn, ids), edges=_edges_within(conn, ids))
    else:
        graph = _task_view(store, task or "")
    keep = {n.id for n in graph.nodes if n.kind is NodeKind.TASK and scope is Scope.TASK}
    return _collapse(graph, collapse_tasks, keep) if collapse_tasks > 0 else graph


def _task_view(store: Store, task_uuid: str) -> LineageGraph:
    task = store.get_task(task_uuid)
    with store.read() as conn:
        # The event history names every run that moved the task, even runs that
        # recorded no task nodes (recording 100,000 task nodes is optional).
        touching = {
            str(r)
            for r in conn.execute(
                select(events.c.run_id).where(events.c.task_uuid == task.uuid, events.c.run_id.is_not(None)).distinct()
            ).scalars()
        }
        run_ids = set(_node_ids(conn, NodeKind.RUN, touching).values())
        task_id = _node_ids(conn, NodeKind.TASK, [task.uuid]).get(task.uuid)
        mine = {task_id} if task_id is not None else set()
        run_ids |= {e.source for e in edges_to(conn, mine)} | {e.target for e in edges_from(conn, mine)}
        ids = _walk(conn, mine | run_ids, False) | _walk(conn, mine, True)
        # A touching run's other outputs (its project, files) show; its other tasks do not.
        ids |= {e.target for e in edges_from(conn, run_ids)}
        nodes = [n for n in load_nodes(conn, ids) if n.kind is not NodeKind.TASK or n.id == task_id]
        kept = {n.id for n in nodes}
        edges = _edges_within(conn, kept)
    if task_id is None:
        # Drawn from the history alone: a stand-in card for the task.
        task_id = -1
        nodes.append(
            LineageNode(
                id=-1,
                kind=NodeKind.TASK,
                key=task.uuid,
                project_id=task.project_id,
                settings={},
                attrs={"label": task.data_title},
            )
        )
    linked = {(e.source, e.target) for e in edges}
    for run in sorted(run_ids & kept):
        if (run, task_id) not in linked and (task_id, run) not in linked:
            edges.append(LineageEdge(source=run, target=task_id, run_id=None, settings={}))
    return LineageGraph(scope=Scope.TASK.value, nodes=nodes, edges=edges)


def _collapse(graph: LineageGraph, limit: int, keep: set[int]) -> LineageGraph:
    """Fold the tasks a run touched into one group card when there are more than ``limit``."""
    kinds = {n.id: n for n in graph.nodes}
    degree: dict[int, int] = defaultdict(int)
    for e in graph.edges:
        degree[e.source] += 1
        degree[e.target] += 1
    groups: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for e in graph.edges:
        for run, other, outgoing in ((e.source, e.target, True), (e.target, e.source, False)):
            # Only tasks with no other connection fold: folding must not hide a path.
            folds = kinds[run].kind is NodeKind.RUN and kinds[other].kind is NodeKind.TASK
            if folds and degree[other] == 1 and other not in keep:
                groups[(run, outgoing)].append(other)
    folded: set[int] = set()
    extra_nodes: list[LineageNode] = []
    extra_edges: list[LineageEdge] = []
    next_id = min([0, *kinds]) - 1
    for (run, outgoing), members in sorted(groups.items()):
        if len(members) <= limit:
            continue
        folded.update(members)
        gid, next_id = next_id, next_id - 1
        label = f"{len(members)} tasks {'written' if outgoing else 'read'}"
        extra_nodes.append(
            LineageNode(
                id=gid,
                kind=NodeKind.GROUP,
                key=f"{kinds[run].key}:{int(outgoing)}",
                project_id=kinds[run].project_id,
                settings={},
                attrs={"label": label, "count": len(members)},
            )
        )
        pair = (run, gid) if outgoing else (gid, run)
        extra_edges.append(LineageEdge(source=pair[0], target=pair[1], run_id=kinds[run].key, settings={}))
    if not folded:
        return graph
    nodes = [n for n in graph.nodes if n.id not in folded] + extra_nodes
    edges = [e for e in graph.edges if e.source not in folded and e.target not in folded] + extra_edges
    return LineageGraph(scope=graph.scope, nodes=nodes, edges=edges)
