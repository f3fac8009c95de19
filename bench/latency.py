"""``annoflow bench latency``: how soon a person's action reaches an idle agent stage's handler.

A person submits a task of an annotation stage whose pathway leads into an agent stage,
while the services idle (the producer with the compose default ``--refresh-every 10``).
For each of N tasks, one at a time with a pause between, it measures the action's
commit -> the handler's start (the handler writes the time it started), and the action
-> the task in its next stage (Complete, after the result was applied).

Setups: ``redis`` (Redis broker; ``annoflow worker``, ``produce`` and ``apply`` as
separate processes, as in the compose file) on the given store (PostgreSQL by URL, or
a fresh SQLite file), and ``embedded`` (``annoflow run``: SQLite and the file broker).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.processes import spawn, stop
from common.enums import Action, Role
from common.errors import InvalidInputError
from common.store import ActionRequest, DataFile, DataUnit, Store
from common.workflow import parse_workflow

__all__ = ["AGENTS", "SETUPS", "bench_latency"]

AGENTS = "bench.latency_agent:runner"
PROJECT = "latency"
SETUPS = ("redis", "embedded")
USER = "annotator@bench.local"
# The compose default: the producer looks again every 10 s unless something wakes it.
REFRESH_EVERY = 10.0
_WORKFLOW = {
    "name": "Latency",
    "start": "Annotate",
    "stages": [
        {"title": "Annotate", "type": "annotation", "pathways": {"submit": "Check"}},
        {"title": "Check", "type": "agent", "pathways": {"done": "Complete"}},
        {"title": "Complete", "type": "complete"},
    ],
}


def bench_latency(
    setup: str, samples: int = 30, *, store_url: str | None = None, broker_url: str | None = None, pause: float = 1.0
) -> dict[str, Any]:
    """Measure ``samples`` submits on one setup (``redis`` or ``embedded``); return the figures.

    Raises:
        InvalidInputError: the setup is unknown.
        TimeoutError: the pipeline did not start, or a task did not reach Complete in 30 s.
    """
    if setup not in SETUPS:
        raise InvalidInputError(f"unknown setup {setup!r}; use one of {', '.join(SETUPS)}")
    with tempfile.TemporaryDirectory(prefix="annoflow-latency-") as tmp:
        home = Path(tmp)
        url = store_url if setup == "redis" and store_url else f"sqlite:///{home / 'store.db'}"
        store = Store.open(url)
        try:
            project_id, name = _project(store, samples)
            env = _env(home, setup, url, broker_url)
            with _services(setup, name, env, home) as logs:
                handler_s, stage_s = _measure(store, project_id, samples, home / "started", pause, logs)
        finally:
            store.close()
    return {
        "setup": setup,
        "store": "postgresql" if url.startswith("postgres") else "sqlite",
        "broker": "redis" if setup == "redis" else "embedded",
        "refresh_every_s": REFRESH_EVERY,
        "samples": samples,
        "action_to_handler_ms": _percentiles(handler_s),
        "action_to_next_stage_ms": _percentiles(stage_s),
    }


def _project(store: Store, samples: int) -> tuple[str, str]:
    """A project of ``samples`` tasks waiting in Annotate, with one annotator; its id and name."""
    name = f"{PROJECT}-{uuid.uuid4().hex[:8]}"
    project = store.create_project(name, parse_workflow(_WORKFLOW, "latency"))
    units = (
        DataUnit(data_hash=str(uuid.uuid4()), title=f"item-{i}", files={"image": DataFile(url=f"file:///l/{i}.jpg")})
        for i in range(samples)
    )
    store.add_data_units(project.id, store.dataset(project.id, "items"), units)
    store.add_user(USER)
    store.set_role(project.id, USER, Role.ANNOTATOR)
    return project.id, project.name


def _env(home: Path, setup: str, store_url: str, broker_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env.update(
        ANNOFLOW_HOME=str(home / "home"),
        ANNOFLOW_STORE_URL=store_url,
        ANNOFLOW_BENCH_LATENCY_DIR=str(home / "started"),
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    if setup == "redis":
        env["ANNOFLOW_BROKER_URL"] = broker_url or "redis://127.0.0.1:6379/13"
    return env


@contextmanager
def _services(setup: str, project: str, env: dict[str, str], home: Path) -> Iterator[Path]:
    """Start the pipeline's processes for ``setup``; stop them after. Yields the log folder."""
    logs = home / "logs"
    logs.mkdir()
    (home / "started").mkdir()
    refresh = ["--refresh-every", str(REFRESH_EVERY)]
    if setup == "redis":
        commands = [
            # The queues are named after the runner's project ("latency"), whatever the store's is called.
            ["worker", "--agents", AGENTS, "--concurrency", "1", "--loglevel", "WARNING"],
            ["apply"],
            ["produce", "--project", project, "--agents", AGENTS, "--metrics-port", "0", *refresh],
        ]
    else:
        commands = [["run", "--project", project, "--agents", AGENTS, "--workers", "1", *refresh]]
    procs = [spawn(args, env, logs / f"{args[0]}.log") for args in commands]
    try:
        yield logs
    finally:
        for proc in reversed(procs):
            stop(proc)


def _measure(
    store: Store, project_id: str, samples: int, started_dir: Path, pause: float, logs: Path
) -> tuple[list[float], list[float]]:
    wf = store.workflow(project_id)
    annotate, complete = wf.stage("Annotate").uuid, wf.stage("Complete").uuid
    waiting = [t for t in store.iter_tasks(project_id) if t.stage_uuid == annotate]
    _warm_up(store, waiting.pop(), complete, started_dir, logs)
    handler_s: list[float] = []
    stage_s: list[float] = []
    for task in waiting[: samples - 1]:
        store.act(ActionRequest(task.uuid, Action.ASSIGN, by=USER, assignee=USER))
        time.sleep(pause)  # the services idle: nothing in flight, the producer waiting
        start = time.time()
        store.act(ActionRequest(task.uuid, Action.SUBMIT, by=USER))
        marker = started_dir / task.uuid
        done_at = _wait(_in_stage(store, task.uuid, complete), f"task {task.uuid}", logs)
        handler_s.append(float(marker.read_text()) - start)
        stage_s.append(done_at - start)
    return handler_s, stage_s


def _warm_up(store: Store, task: Any, complete: str, started_dir: Path, logs: Path) -> None:
    """One task through first: the worker's pool and every connection are up before the clock runs."""
    store.act(ActionRequest(task.uuid, Action.ASSIGN, by=USER, assignee=USER))
    store.act(ActionRequest(task.uuid, Action.SUBMIT, by=USER))
    _wait(_in_stage(store, task.uuid, complete), "the first task (warm-up)", logs, 120.0)


def _in_stage(store: Store, task_uuid: str, stage_uuid: str) -> Callable[[], bool]:
    return lambda: store.get_task(task_uuid).stage_uuid == stage_uuid


def _wait(check: Callable[[], bool], what: str, logs: Path, timeout: float = 30.0) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return time.time()
        time.sleep(0.002)
    tail = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(logs.glob("*.log")))
    raise TimeoutError(f"{what} did not reach Complete in {timeout:.0f} s; logs:\n{tail}")


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if len(seconds) < 2:
        return {"p50": round(1000 * seconds[0], 1)} if seconds else {}
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        "p50": round(1000 * statistics.median(seconds), 1),
        "p95": round(1000 * cuts[94], 1),
        "p99": round(1000 * cuts[98], 1),
        "max": round(1000 * max(seconds), 1),
    }
