"""What a run read and wrote, gathered while it works and recorded once, when it ends.

ToTask runs and agent sessions (``annoflow run``, ``annoflow produce``: an
:class:`AgentRun`) fill a
:class:`RunLineage` from what they handle anyway: the claimed tasks' datasets, the
annotation files' URLs, the applier's outcomes. At the end one
:func:`~common.lineage.record_run_lineage` call writes it; that call never raises, so
lineage can never break the run. Many files fold into their folders, so a run over
100,000 annotation files keeps a few counters here, not 100,000 URLs.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from common.lineage import NodeKind, NodeSettings, Ref, record_run_lineage
from common.store import ProjectRecord, Store
from common.store.apply import ApplyOutcome
from common.totask.preprocessors import PreProcessor, RemotePreProcessor

__all__ = [
    "MAX_FILES",
    "AgentRun",
    "AppliedTasks",
    "FileTally",
    "RunLineage",
    "agent_module_ref",
    "pre_processor_refs",
]

# More files than this are recorded as their folders; more folders than this as their common parent.
MAX_FILES = 5


def _parent(url: str) -> str:
    head, sep, _ = url.rstrip("/").rpartition("/")
    return head if sep and head else url


def _common_folder(folders: list[str]) -> str:
    """The longest path, by whole segments, that every folder starts with ("" when none)."""
    common: list[str] = []
    for segments in zip(*(f.split("/") for f in folders), strict=False):
        if len(set(segments)) > 1:
            break
        common.append(segments[0])
    return "/".join(common).rstrip("/")


class FileTally:
    """The files a run read: the first few by name, every one counted under its folder."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.per_folder: dict[str, int] = {}

    def add(self, url: str) -> None:
        if len(self.names) <= MAX_FILES:
            self.names.add(url)
        folder = _parent(url)
        self.per_folder[folder] = self.per_folder.get(folder, 0) + 1

    def refs(self) -> list[Ref]:
        """Each file while there are few; else each folder (with its count), else their common parent."""
        if len(self.names) <= MAX_FILES:
            return [Ref.file(u) for u in sorted(self.names)]
        folders = self.per_folder
        if len(folders) > MAX_FILES:
            key = _common_folder(list(folders))
            if key and not key.endswith(":"):  # a real common folder, not just "/" or a scheme
                return [Ref(kind=NodeKind.FOLDER, key=key, attrs={"files": sum(folders.values())})]
            # Nothing in common (several hosts): the biggest folders stand for the run's files.
            folders = dict(sorted(folders.items(), key=lambda kv: -kv[1])[:MAX_FILES])
        return [Ref(kind=NodeKind.FOLDER, key=f, attrs={"files": n}) for f, n in sorted(folders.items())]


def pre_processor_refs(pre: PreProcessor) -> list[Ref]:
    """The model a run used: a remote server by URL, a plugin by name and version, plus its model files.

    A plugin names the files it loaded in ``model_files`` (the built-in face detector: its
    Haar cascade XML, ``cascade_path``).
    """
    title = NodeSettings(title=f"{pre.name} {pre.version}")
    attrs = {"model_weight": True, "pre_processor": pre.name, "version": pre.version}
    if isinstance(pre, RemotePreProcessor):
        refs = [Ref(kind=NodeKind.FILE, key=pre.base_url, attrs=attrs | {"remote": True}, settings=title)]
    else:
        # The version is part of the key: a run on another version used another model.
        refs = [Ref(kind=NodeKind.FILE, key=f"{pre.name}@{pre.version}", attrs=attrs, settings=title)]
    files: Iterable[object] = getattr(pre, "model_files", None) or [
        p for p in [getattr(pre, "cascade_path", None)] if p is not None
    ]
    refs += [Ref.file(str(f), model_weight=True) for f in files]
    return refs


def agent_module_ref(ref: str) -> Ref:
    """The file of the runner module ``package.module:runner`` (imported already by the caller)."""
    module = ref.partition(":")[0]
    path = getattr(sys.modules.get(module), "__file__", None)
    key = str(Path(path).resolve()) if path else module.replace(".", "/") + ".py"
    return Ref(kind=NodeKind.FILE, key=key, attrs={"model_weight": False, "runner": ref})


class AppliedTasks:
    """A result applier's observer that keeps the uuids of the tasks it applied (labels written or moved)."""

    def __init__(self) -> None:
        self.uuids: list[str] = []
        self._lock = threading.Lock()

    def applied(self, outcome: ApplyOutcome, seconds: float, messages: int = 1) -> None:
        with self._lock:
            self.uuids.extend(n.task_uuid for n in outcome.notes if n.outcome == "applied")

    def dead_letter(self) -> None:
        """Nothing to keep: a dead letter changed no task."""

    def flush(self) -> None:
        """Nothing to do: the uuids are kept in memory."""


@dataclass
class RunLineage:
    """A run's inputs and outputs as they are gathered; :meth:`record` writes them once."""

    inputs: list[Ref] = field(default_factory=list)
    datasets: set[str] = field(default_factory=set)
    files: FileTally = field(default_factory=FileTally)
    changed: list[str] = field(default_factory=list)

    def add_project(self, project_id: str) -> None:
        self.inputs.append(Ref(kind=NodeKind.PROJECT, key=project_id))

    def record(self, store: Store, run_id: str, *, outputs: bool = True) -> bool:
        """Record what was gathered (no task outputs when ``outputs`` is False: a rolled-back run).

        Returns False (logged by the lineage module) when it could not be recorded.
        """
        refs = [*self.inputs, *(Ref.dataset(d) for d in sorted(self.datasets) if d), *self.files.refs()]
        changed = [Ref.task(u) for u in dict.fromkeys(self.changed)] if outputs else []
        return record_run_lineage(store, run_id, inputs=refs, outputs=changed)


class AgentRun:
    """The run record (kind ``agent``) and the lineage of one ``annoflow run`` or ``produce`` session.

    Created when the session starts (the runner module is imported by then); give
    :attr:`applied` to the result applier as its observer, and call :meth:`finish` once.
    """

    def __init__(self, store: Store, project: ProjectRecord, ref: str, params: dict[str, object]) -> None:
        self.store = store
        self.id = store.create_run(project.id, "agent", ref, {"agents": ref, **params}).id
        self.lineage = RunLineage()
        self.lineage.add_project(project.id)
        self.lineage.inputs.append(agent_module_ref(ref))
        self.applied = AppliedTasks()
        self.started = time.monotonic()

    def finish(self, status: str, message: str, metrics: dict[str, object]) -> None:
        """Record the end: status, message, metrics (plus ``elapsed_s``), and the lineage.

        Tasks an agent moved stay moved even when the session fails, so they are outputs either way.
        """
        elapsed = round(time.monotonic() - self.started, 2)
        self.store.update_run(self.id, status=status, message=message, metrics={**metrics, "elapsed_s": elapsed})
        self.lineage.changed = self.applied.uuids
        self.lineage.record(self.store, self.id)
