"""Load a user's runner from a ``package.module:attribute`` reference.

``annoflow worker``, ``produce`` and ``run`` all take ``--agents
examples.demo_agent:runner``. The worker's parent process only *probes* the
module in a subprocess (so handlers and their models load in each child after
fork, never in the parent), and a module that fails to import stops the worker
at start with the import error.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from common.errors import InvalidInputError
from common.workflow_graph import Workflow

__all__ = ["AgentLike", "RunnerLike", "StageInfo", "agents_of", "load_runner", "probe_runner"]


@runtime_checkable
class AgentLike(Protocol):
    """What the pipeline needs of one registered stage handler (a QueueRunner agent)."""

    stage_key: str
    include_labels: bool

    def __call__(self, specs: Sequence[str]) -> list[str]: ...


class RunnerLike(Protocol):
    """What the pipeline needs of a runner: its project and its agents."""

    project: str | None

    def bind(self, workflow: Workflow) -> Any: ...

    def agent_for(self, stage_uuid: str) -> Any: ...


@dataclass(frozen=True)
class StageInfo:
    """One agent stage as the probe reports it."""

    stage_key: str
    include_labels: bool


def agents_of(runner: Any) -> list[Any]:
    """The runner's registered agents, in registration order."""
    agents = getattr(runner, "agents", None)
    if callable(agents):
        agents = agents()
    if agents is None:
        raise InvalidInputError(f"{runner!r} is not a QueueRunner (it has no agents); pass module:runner")
    return list(agents.values()) if isinstance(agents, dict) else list(agents)


def _ensure_cwd_on_path() -> None:
    # `annoflow worker --agents examples.demo_agent:runner` run from a project
    # folder should find that folder's modules, as `python -m` would.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def load_runner(ref: str) -> Any:
    """Import ``package.module:attribute`` and return the attribute.

    Raises:
        InvalidInputError: the reference is malformed, the module fails to
            import (the message carries the import error) or lacks the attribute.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInputError(f"--agents {ref!r} should be 'package.module:runner', e.g. examples.demo_agent:runner")
    _ensure_cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # any error while importing user code stops the process clearly
        raise InvalidInputError(
            f"cannot import handler module {module_name!r} (from --agents {ref}): {type(e).__name__}: {e}; "
            "fix the module or run from the folder that contains it"
        ) from e
    try:
        return getattr(module, attr)
    except AttributeError as e:
        raise InvalidInputError(
            f"module {module_name!r} has no attribute {attr!r}; --agents takes module:name of the QueueRunner"
        ) from e


_PROBE = """
import json, sys
from common.loader import agents_of, load_runner
try:
    runner = load_runner(sys.argv[1])
    agents = agents_of(runner)
except Exception as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(0)
print(json.dumps({"project": getattr(runner, "project", None),
                  "stages": [{"stage_key": a.stage_key, "include_labels": bool(a.include_labels)} for a in agents]}))
"""


def probe_runner(ref: str, run: Callable[..., Any] = subprocess.run) -> tuple[str | None, list[StageInfo]]:
    """Import ``ref`` in a throw-away subprocess and report its project and agent stages.

    Raises:
        InvalidInputError: the module does not import or has no agents.
    """
    _ensure_cwd_on_path()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = run([sys.executable, "-c", _PROBE, ref], capture_output=True, text=True, env=env, timeout=120)
    lines = [ln for ln in (done.stdout or "").splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise InvalidInputError(
            f"cannot load handlers from --agents {ref}: the probe exited {done.returncode}: "
            f"{(done.stderr or '').strip()[-2000:]}"
        )
    report = json.loads(lines[-1])
    if "error" in report:
        raise InvalidInputError(str(report["error"]))
    stages = [StageInfo(s["stage_key"], s["include_labels"]) for s in report["stages"]]
    if not stages:
        raise InvalidInputError(f'{ref} registers no stage; add @runner.stage("<agent stage title>") handlers')
    return report["project"], stages
