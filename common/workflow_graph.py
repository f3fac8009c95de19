"""The compiled workflow graph: stages and pathways by UUID, lookups, routing and export.

:func:`common.workflow.parse_workflow` builds a :class:`Workflow` from a definition;
the store, the task lifecycle and the producer work on this graph only, never on
the file it came from.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from common.enums import StageType
from common.errors import NotFoundError

__all__ = ["Pathway", "Stage", "Workflow", "canonical_key"]


def canonical_key(key: str) -> str:
    """``key`` as stages and pathways spell a UUID (lower case, hyphenated) if it is one; else as it is."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return key


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
        canonical = canonical_key(name_or_uuid)  # only on a miss: the applier looks up every result
        for p in self.pathways:
            if p.uuid == canonical:
                return p
        names = ", ".join(f"'{p.name}' ({p.uuid})" for p in self.pathways) or "none"
        raise NotFoundError(f"stage '{self.title}' has no pathway '{name_or_uuid}'; its pathways are: {names}")


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
        found = (
            self.stages.get(title_or_uuid)
            or self._by_title.get(title_or_uuid)
            or self.stages.get(canonical_key(title_or_uuid))
        )
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
        """A JSON-ready form that :func:`common.workflow.parse_workflow` reads back unchanged."""
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
