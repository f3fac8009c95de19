"""Workflow definitions: parse a YAML or JSON file, validate it, route tasks.

A workflow file looks like::

    name: Apples
    start: Annotate 1
    stages:
      - title: Annotate 1
        type: annotation
        pathways: {submit: Review 1}
      - title: Review 1
        type: review
        pathways: {approve: Complete, reject: Annotate 1}
      - title: Complete
        type: complete

A pathway value is either the destination title or a mapping with ``to`` and,
for routers, ``percentage`` or ``users``. Stages and pathways get UUIDs that are
stable across loads (derived from the workflow name and titles) unless the file
gives them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.enums import StageType
from common.errors import InvalidInputError, NotFoundError, WorkflowDefinitionError

__all__ = ["Pathway", "Stage", "Workflow", "load_workflow", "parse_workflow"]

_NAMESPACE = uuid.UUID("6f1d8d8e-4f7b-4c0e-9a51-8a1f3c1c2b7a")


class PathwaySpec(BaseModel):
    """One outgoing edge as written in the file."""

    model_config = ConfigDict(extra="forbid")
    to: str
    uuid: str | None = None
    percentage: float | None = None
    users: list[str] | None = None


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


class Pathway(BaseModel):
    """A named edge from one stage to another."""

    model_config = ConfigDict(frozen=True)
    uuid: str
    name: str
    source: str  # stage uuid
    to: str  # stage uuid
    percentage: float | None = None
    users: tuple[str, ...] | None = None


class Stage(BaseModel):
    """A compiled stage with resolved pathways."""

    model_config = ConfigDict(frozen=True)
    uuid: str
    title: str
    type: StageType
    pathways: tuple[Pathway, ...] = ()
    annotators: int | None = None
    certifications: tuple[str, ...] = ()
    on_failure: str | None = None  # pathway uuid
    description: str = ""

    def pathway(self, name_or_uuid: str) -> Pathway:
        """Return the pathway with this name or UUID.

        Raises:
            NotFoundError: no such pathway; the message lists the stage's pathways.
        """
        for p in self.pathways:
            if name_or_uuid in (p.name, p.uuid):
                return p
        names = ", ".join(f"'{p.name}' ({p.uuid})" for p in self.pathways) or "none"
        raise NotFoundError(f"stage '{self.title}' has no pathway '{name_or_uuid}'; its pathways are: {names}")


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


class Workflow:
    """A validated workflow graph: stages by UUID and the routing rules."""

    def __init__(self, name: str, start: str, stages: Iterable[Stage], source: str = "<workflow>") -> None:
        self.name = name
        self.start_uuid = start
        self.source = source
        self.stages: dict[str, Stage] = {s.uuid: s for s in stages}
        self._by_title = {s.title: s for s in self.stages.values()}

    # ----------------------------------------------------------------- lookup
    def stage(self, title_or_uuid: str) -> Stage:
        """Return a stage (routers included) by title or UUID.

        Raises:
            NotFoundError: no such stage; the message lists the stages.
        """
        found = self.stages.get(title_or_uuid) or self._by_title.get(title_or_uuid)
        if found is None:
            titles = ", ".join(f"'{s.title}'" for s in self.user_stages())
            raise NotFoundError(f"workflow '{self.name}' has no stage '{title_or_uuid}'; stages: {titles}")
        return found

    def user_stages(self) -> list[Stage]:
        """The stages users see: every stage but the routers, in file order."""
        return [s for s in self.stages.values() if not s.type.is_router]

    @property
    def start(self) -> Stage:
        return self.stages[self.start_uuid]

    @property
    def is_consensus(self) -> bool:
        return any(s.type in (StageType.CONSENSUS_ANNOTATION, StageType.CONSENSUS_REVIEW) for s in self.stages.values())

    # ---------------------------------------------------------------- routing
    def resolve(self, stage_uuid: str, data_hash: str, actor: str | None) -> tuple[Stage, list[Pathway]]:
        """Follow routers from ``stage_uuid`` to the first non-router stage.

        Returns the stage reached and the router pathways taken on the way.
        """
        taken: list[Pathway] = []
        stage = self.stages[stage_uuid]
        while stage.type.is_router:
            pathway = self._route(stage, data_hash, actor)
            taken.append(pathway)
            stage = self.stages[pathway.to]
        return stage, taken

    @staticmethod
    def _route(router: Stage, data_hash: str, actor: str | None) -> Pathway:
        if router.type is StageType.PERCENTAGE_ROUTER:
            # A stable bucket in [0, 100) from the data hash: the same item always
            # takes the same way, whichever process routes it.
            digest = hashlib.sha256(f"{router.uuid}:{data_hash}".encode()).digest()
            bucket = int.from_bytes(digest[:8], "big") % 10_000 / 100
            edge = 0.0
            for p in router.pathways:
                edge += p.percentage or 0.0
                if bucket < edge:
                    return p
            return router.pathways[-1]
        for p in router.pathways:
            if p.users and actor and actor in p.users:
                return p
        for p in router.pathways:
            if not p.users:
                return p
        return router.pathways[-1]

    # ----------------------------------------------------------------- export
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form that :func:`parse_workflow` reads back unchanged."""
        stages = []
        for s in self.stages.values():
            entry: dict[str, Any] = {"title": s.title, "type": s.type.value, "uuid": s.uuid}
            pathways: dict[str, Any] = {}
            for p in s.pathways:
                body: dict[str, Any] = {"to": self.stages[p.to].title, "uuid": p.uuid}
                if p.percentage is not None:
                    body["percentage"] = p.percentage
                if p.users is not None:
                    body["users"] = list(p.users)
                pathways[p.name] = body
            if pathways:
                entry["pathways"] = pathways
            if s.annotators is not None:
                entry["annotators"] = s.annotators
            if s.certifications:
                entry["certifications"] = list(s.certifications)
            if s.on_failure:
                entry["on_failure"] = next(p.name for p in s.pathways if p.uuid == s.on_failure)
            if s.description:
                entry["description"] = s.description
            stages.append(entry)
        return {"name": self.name, "start": self.start.title, "stages": stages}


_REQUIRED_PATHWAYS: dict[StageType, tuple[str, ...]] = {
    StageType.REVIEW: ("approve", "reject"),
    StageType.CONSENSUS_REVIEW: ("approve", "reject"),
}
_SINGLE_PATHWAY = (StageType.ANNOTATION, StageType.CONSENSUS_ANNOTATION)


def _check(spec: WorkflowSpec) -> list[str]:
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


def _where(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """Name the place of a schema error by stage title where there is one, not only by index."""
    path = ".".join(str(x) for x in loc) or "file"
    if len(loc) >= 2 and loc[0] == "stages" and isinstance(loc[1], int):
        stages = data.get("stages")
        entry = stages[loc[1]] if isinstance(stages, list) and loc[1] < len(stages) else None
        if isinstance(entry, Mapping) and "title" in entry:
            rest = ".".join(str(x) for x in loc[2:]) or "stage"
            return f"stage '{entry['title']}' (stages[{loc[1]}]) {rest}"
    return path


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice instead of keeping the last one silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}; each name may appear once", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}; each name may appear once")
        out[key] = value
    return out


def parse_workflow(data: Mapping[str, Any], source: str = "<workflow>") -> Workflow:
    """Validate a workflow mapping and compile it.

    Raises:
        WorkflowDefinitionError: every problem found, each naming its stage.
    """
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as e:
        problems = [f"{_where(data, err['loc'])}: {err['msg']}" for err in e.errors()]
        raise WorkflowDefinitionError(source, problems) from e
    problems = _check(spec)
    if problems:
        raise WorkflowDefinitionError(source, problems)
    stage_ids = {s.title: s.uuid or _stable_uuid(spec.name, s.title) for s in spec.stages}
    stages = []
    for s in spec.stages:
        sid = stage_ids[s.title]
        pathways = tuple(
            Pathway(
                uuid=p.uuid or _stable_uuid(spec.name, s.title, name),
                name=name,
                source=sid,
                to=stage_ids[p.to],
                percentage=p.percentage,
                users=tuple(p.users) if p.users is not None else None,
            )
            for name, p in s.pathways.items()
        )
        on_failure = next((p.uuid for p in pathways if p.name == s.on_failure), None)
        stages.append(
            Stage(
                uuid=sid,
                title=s.title,
                type=s.type,
                pathways=pathways,
                annotators=s.annotators,
                certifications=tuple(s.certifications),
                on_failure=on_failure,
                description=s.description,
            )
        )
    return Workflow(spec.name, stage_ids[spec.start], stages, source)


def load_workflow(path: str | Path) -> Workflow:
    """Read and validate a workflow file (``.yaml``, ``.yml`` or ``.json``).

    Raises:
        InvalidInputError: the file is missing or not YAML/JSON.
        WorkflowDefinitionError: the workflow itself is invalid.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInputError(f"{p}: cannot read workflow file ({e.strerror}); check the path") from e
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{p}: not a text file ({e.reason}); save the workflow as UTF-8 YAML or JSON") from e
    try:
        # Duplicate keys are refused: a second "submit:" would otherwise replace the first unseen.
        data = (
            json.loads(text, object_pairs_hook=_unique_pairs)
            if p.suffix == ".json"
            else yaml.load(text, _UniqueKeyLoader)  # a SafeLoader: builds plain data only
        )
    except (ValueError, yaml.YAMLError) as e:
        raise InvalidInputError(
            f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'} ({e}); fix the place shown"
        ) from e
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{p}: a workflow file holds a mapping with 'name', 'start' and 'stages'")
    return parse_workflow(data, str(p))
