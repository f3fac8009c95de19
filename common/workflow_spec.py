"""The workflow file's schema and the checks a definition must pass before it is compiled.

:class:`WorkflowSpec` is a file as written: pydantic refuses unknown keys and
wrong types. :func:`check_spec` then looks at the graph itself (titles, targets,
the pathways each stage type needs, router percentages and loops, reachability)
and returns every problem it finds, each naming its stage, rather than stopping
at the first.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.enums import StageType

__all__ = ["PathwaySpec", "StageSpec", "WorkflowSpec", "check_spec"]


def _canonical_uuid(value: str | None) -> str | None:
    """A stage's or pathway's uuid as tasks and results spell it (lower case, hyphenated)."""
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(
            f"uuid '{value}' is not a UUID; write it as 32 hex digits (8-4-4-4-12), or leave it out "
            "and a stable one is made from the names"
        ) from None


class PathwaySpec(BaseModel):
    """One outgoing edge as written in the file."""

    model_config = ConfigDict(extra="forbid")
    to: str
    uuid: str | None = None
    percentage: float | None = None
    users: list[str] | None = None

    _uuid = field_validator("uuid")(_canonical_uuid)


class StageSpec(BaseModel):
    """One stage as written in the file."""

    model_config = ConfigDict(extra="forbid")
    title: str
    type: StageType
    uuid: str | None = None
    pathways: dict[str, PathwaySpec] = Field(default_factory=dict)
    annotators: int | None = None
    certifications: list[str] = Field(default_factory=list)
    on_failure: str | None = None
    description: str = ""

    _uuid = field_validator("uuid")(_canonical_uuid)

    @field_validator("pathways", mode="before")
    @classmethod
    def _short_pathways(cls, value: Any) -> Any:
        # "approve: Complete" is shorthand for "approve: {to: Complete}".
        if isinstance(value, Mapping):
            return {k: ({"to": v} if isinstance(v, str) else v) for k, v in value.items()}
        if isinstance(value, list):
            out: dict[str, Any] = {}
            for item in value:
                if not isinstance(item, Mapping) or "name" not in item:
                    raise ValueError("each pathway in a list needs a 'name' and a 'to'")
                body = dict(item)
                name = str(body.pop("name"))
                if name in out:
                    raise ValueError(f"pathway name '{name}' appears twice; pathway names must be unique")
                out[name] = body
            return out
        return value


class WorkflowSpec(BaseModel):
    """A whole workflow file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    start: str
    stages: list[StageSpec]


_REQUIRED_PATHWAYS: dict[StageType, tuple[str, ...]] = {
    StageType.REVIEW: ("approve", "reject"),
    StageType.CONSENSUS_REVIEW: ("approve", "reject"),
}
_SINGLE_PATHWAY = (StageType.ANNOTATION, StageType.CONSENSUS_ANNOTATION)


def check_spec(spec: WorkflowSpec) -> list[str]:
    """Every problem of ``spec``, each naming its stage; empty when the workflow is valid.

    Router loops and unreachable stages are looked for only once everything else is sound.
    """
    problems: list[str] = []
    titles = [s.title for s in spec.stages]
    for t in sorted({t for t in titles if titles.count(t) > 1}):
        problems.append(f"stage '{t}': duplicate stage title; titles must be unique")
    given = [u for s in spec.stages for u in [s.uuid, *(p.uuid for p in s.pathways.values())] if u]
    for u in sorted({u for u in given if given.count(u) > 1}):
        problems.append(f"uuid '{u}' is given to more than one stage or pathway; uuids must be unique")
    known = set(titles)
    if spec.start not in known:
        problems.append(f"start: unknown stage '{spec.start}'; stages are {sorted(known)}")
    if not any(s.type.is_final for s in spec.stages):
        problems.append("no final stage: add a stage of type 'complete' or 'archive'")
    for s in spec.stages:
        where = f"stage '{s.title}'"
        for name, p in s.pathways.items():
            if p.to not in known:
                problems.append(f"{where}: pathway '{name}' goes to unknown stage '{p.to}'")
        if s.type.is_final and s.pathways:
            problems.append(f"{where}: a final stage has no pathways; remove them")
        if not s.type.is_final and not s.pathways:
            problems.append(f"{where}: no pathways; every non-final stage needs at least one")
        for need in _REQUIRED_PATHWAYS.get(s.type, ()):
            if need not in s.pathways:
                problems.append(f"{where}: a {s.type.value} stage needs a pathway named '{need}'")
        if s.type in _SINGLE_PATHWAY and len(s.pathways) > 1:
            problems.append(f"{where}: a {s.type.value} stage has exactly one pathway (submit)")
        if s.type is StageType.CONSENSUS_ANNOTATION and (s.annotators is None or s.annotators < 2):
            problems.append(f"{where}: a consensus_annotation stage needs 'annotators: N' with N >= 2")
        if s.type is StageType.PERCENTAGE_ROUTER:
            if any(p.percentage is None for p in s.pathways.values()):
                problems.append(f"{where}: every percentage_router pathway needs a 'percentage'")
            elif any(not 0 <= (p.percentage or 0) <= 100 for p in s.pathways.values()):
                problems.append(f"{where}: each router percentage must be between 0 and 100")
            else:
                total = sum(p.percentage or 0 for p in s.pathways.values())
                if abs(total - 100) > 1e-6:  # 33.3 + 33.3 + 33.4 may miss 100 by a rounding error
                    problems.append(f"{where}: router percentages sum to {total:g}, not 100")
        if s.type is StageType.USER_ROUTER and s.pathways and all(p.users for p in s.pathways.values()):
            problems.append(f"{where}: a user_router needs one pathway without 'users' as the default")
        if s.on_failure is not None and s.on_failure not in s.pathways:
            problems.append(f"{where}: on_failure names unknown pathway '{s.on_failure}'")
        if s.on_failure is not None and s.type is not StageType.AGENT:
            problems.append(f"{where}: on_failure is only for agent stages")
    if not problems:
        problems.extend(_router_cycles(spec))
    if not problems:
        problems.extend(_unreachable(spec))
    return problems


def _router_cycles(spec: WorkflowSpec) -> list[str]:
    # Routers pass a task on without anyone acting; a loop made only of routers
    # would route a task forever, so every router path must end at a real stage.
    routers = {s.title: [p.to for p in s.pathways.values()] for s in spec.stages if s.type.is_router}
    problems: list[str] = []
    for first in routers:
        todo = [(first, [first])]
        seen: set[str] = set()
        while todo:
            here, trail = todo.pop()
            for nxt in routers.get(here, []):
                if nxt == first:
                    loop = " -> ".join([*trail, first])
                    problems.append(
                        f"stage '{first}': routers loop back to it ({loop}); route one way to a non-router stage"
                    )
                    todo = []
                    break
                if nxt in routers and nxt not in seen:
                    seen.add(nxt)
                    todo.append((nxt, [*trail, nxt]))
    return problems


def _unreachable(spec: WorkflowSpec) -> list[str]:
    edges = {s.title: [p.to for p in s.pathways.values()] for s in spec.stages}
    seen = {spec.start}
    todo = [spec.start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return [
        f"stage '{s.title}': unreachable from the start stage '{spec.start}'"
        for s in spec.stages
        if s.title not in seen
    ]
