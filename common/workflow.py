"""Workflow definitions: read a YAML or JSON file, validate it, compile it.

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

The file's schema and checks are in :mod:`common.workflow_spec`, the compiled
graph (lookups and routing) in :mod:`common.workflow_graph`; its classes are
re-exported here, so ``common.workflow`` is the one import callers need.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from common.errors import InvalidInputError, WorkflowDefinitionError
from common.workflow_graph import Pathway, Stage, Workflow
from common.workflow_spec import WorkflowSpec, check_spec

__all__ = ["Pathway", "Stage", "Workflow", "load_workflow", "parse_workflow"]

_NAMESPACE = uuid.UUID("6f1d8d8e-4f7b-4c0e-9a51-8a1f3c1c2b7a")


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


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
    problems = check_spec(spec)
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
