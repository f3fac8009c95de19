"""What lineage is made of: node kinds, display settings, references and the graph records."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Direction",
    "LineageEdge",
    "LineageGraph",
    "LineageMeta",
    "LineageNode",
    "NodeKind",
    "NodeSettings",
    "Ref",
]


class NodeKind(StrEnum):
    """What a lineage node stands for."""

    PROJECT = "project"  # a project as it is now
    PROJECT_VERSION = "project_version"  # a saved version of a project (project@N)
    DATASET = "dataset"  # a dataset of a project
    FILE = "file"  # a file (a model weight when attrs["model_weight"])
    FOLDER = "folder"  # a folder of files
    TASK = "task"  # an annotation task
    JOB = "job"  # a labeling job (a batch of human work, e.g. one stage's assignments)
    APP = "app"  # an app session that leaves results behind
    RUN = "run"  # the main node: one producer, agent, ToTask or user run
    GROUP = "group"  # drawn only: many tasks of one run folded into one card


# Default icon per kind (Material Design icon names, as the display settings use).
DEFAULT_ICONS: dict[NodeKind, str] = {
    NodeKind.PROJECT: "folder-special",
    NodeKind.PROJECT_VERSION: "time-restore",
    NodeKind.DATASET: "collection-image",
    NodeKind.FILE: "file",
    NodeKind.FOLDER: "folder",
    NodeKind.TASK: "assignment",
    NodeKind.JOB: "accounts-list",
    NodeKind.APP: "apps",
    NodeKind.RUN: "play-circle",
    NodeKind.GROUP: "layers",
}


class Direction(StrEnum):
    """Whether a node was read (input) or written (output) by a run."""

    INPUT = "input"
    OUTPUT = "output"


class NodeSettings(BaseModel):
    """How a card is drawn. Every field is optional; unset fields keep the default look.

    ``url`` must be relative to the annoflow instance (start with a slash) so the
    page works wherever it is served.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    icon: str | None = Field(default=None, max_length=64)
    icon_color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{3,8}$")
    icon_bg_color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{3,8}$")
    url: str | None = Field(default=None, pattern=r"^/")
    url_title: str | None = Field(default=None, max_length=200)

    def set_fields(self) -> dict[str, str]:
        """The fields that were given, for merging over older settings."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class LineageMeta(BaseModel):
    """Display settings for the two ends of one record: the card and the main (run) node.

    As with any shared main node, the last record that sets ``node_settings`` wins.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    relation_settings: NodeSettings | None = None
    node_settings: NodeSettings | None = None


class Ref(BaseModel):
    """A reference to something a run read or wrote, before it is stored as a node.

    ``key`` is the natural id: a project id, ``<project id>@<number>`` for a version,
    a dataset id, a file or folder path, a task UUID, a job id, a run id.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: NodeKind
    key: str = Field(min_length=1, max_length=1000)
    project_id: str | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)
    settings: NodeSettings | None = None

    @classmethod
    def file(cls, path: str, model_weight: bool = False, project_id: str | None = None) -> Ref:
        """A file; ``model_weight`` marks model weights (drawn as a model)."""
        return cls(kind=NodeKind.FILE, key=path, project_id=project_id, attrs={"model_weight": model_weight})

    @classmethod
    def folder(cls, path: str, project_id: str | None = None) -> Ref:
        return cls(kind=NodeKind.FOLDER, key=path, project_id=project_id)

    @classmethod
    def task(cls, task_uuid: str, project_id: str | None = None) -> Ref:
        return cls(kind=NodeKind.TASK, key=task_uuid, project_id=project_id)

    @classmethod
    def dataset(cls, dataset_id: str, project_id: str | None = None) -> Ref:
        return cls(kind=NodeKind.DATASET, key=dataset_id, project_id=project_id)

    @classmethod
    def job(cls, job_id: str, project_id: str | None = None) -> Ref:
        return cls(kind=NodeKind.JOB, key=job_id, project_id=project_id)


class LineageNode(BaseModel):
    """A stored node, ready to draw."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: NodeKind
    key: str
    project_id: str | None
    settings: dict[str, str]
    attrs: dict[str, Any]

    @property
    def title(self) -> str:
        return self.settings.get("title") or str(self.attrs.get("label") or f"{self.kind.value} {self.key}")

    @property
    def icon(self) -> str:
        return self.settings.get("icon") or DEFAULT_ICONS[self.kind]

    @property
    def subtitle(self) -> str:
        """The second line of the card: the description, else what the node is."""
        if self.settings.get("description"):
            return self.settings["description"]
        if self.kind is NodeKind.FILE and self.attrs.get("model_weight"):
            return "model weights"
        if self.kind is NodeKind.RUN:
            return f"{self.attrs.get('run_kind', 'run')} run"
        return self.kind.value.replace("_", " ")


class LineageEdge(BaseModel):
    """A stored connection: ``source`` flowed into ``target`` (data -> run, or run -> data)."""

    model_config = ConfigDict(frozen=True)

    source: int
    target: int
    run_id: str | None
    settings: dict[str, str] = Field(default_factory=dict)


class LineageGraph(BaseModel):
    """The nodes and connections of one view (workspace, project or task scope)."""

    model_config = ConfigDict(frozen=True)

    scope: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]

    def node(self, node_id: int) -> LineageNode:
        """Raises: KeyError: no node with that id in this view."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def find(self, kind: NodeKind, key: str) -> LineageNode | None:
        return next((n for n in self.nodes if n.kind is kind and n.key == key), None)
