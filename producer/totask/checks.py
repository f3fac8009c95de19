"""The critical checks a ToTask run makes before any task is touched, with the seed's messages.

In order: the project exists; the agent is a member with an annotating role; the
project has a data collection (and the one the filters name is its own); for
inference, the pre-processor is active (loaded or answering ``/health``); some task
matches the filters; for the file method, the target specification exists on the
matching data units. Each failure raises with what was wrong and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from sqlalchemy import select

from common.enums import ANNOTATING_ROLES
from common.errors import ForbiddenError, InvalidInputError, NotFoundError
from common.store import ProjectRecord, Store
from common.store.schema import datasets
from common.store.totask_runs import count_tasks
from common.totask.params import ToTaskParams
from common.totask.preprocessors import PreProcessorRegistry
from common.versions import resolve_target

__all__ = ["RunPlan", "check_agent", "check_data_collection", "check_run", "check_target_specification"]

# Data units looked at for the target specification: enough to tell "nowhere" from "some lack it".
_SPEC_SAMPLE = 1000


@dataclass(frozen=True)
class RunPlan:
    """What the checks established: the project and how many tasks the filters match."""

    project: ProjectRecord
    total: int
    pre_processor_version: str | None = None


def check_agent(store: Store, project: ProjectRecord, agent: str | int) -> str:
    """The agent's email, if it holds an annotating role on the project.

    Raises:
        NotFoundError: no such member of the project.
        ForbiddenError: the member's role cannot annotate.
    """
    members = {u.email: u for u in store.list_users(project.id)}
    user = members.get(str(agent))
    if user is None:
        known = ", ".join(sorted(members)) or "none yet"
        raise NotFoundError(
            f"Agent not found: {agent!r} is not a member of project {project.name!r} (members: {known}); "
            f"add it with 'annoflow users add {agent} --project {project.name} --role annotator'"
        )
    if user.role not in ANNOTATING_ROLES:
        roles = ", ".join(sorted(r.value for r in ANNOTATING_ROLES))
        raise ForbiddenError(
            f"Agent {user.email!r} has role {user.role.value if user.role else 'none'} on {project.name!r}, "
            f"which cannot annotate; give it one of: {roles}"
        )
    return user.email


def check_data_collection(store: Store, project: ProjectRecord, params: ToTaskParams) -> None:
    """The project has a data collection, and the filters name only its own.

    Raises:
        NotFoundError: "Project has no data collection".
    """
    with store.read() as conn:
        rows = conn.execute(select(datasets.c.id, datasets.c.name).where(datasets.c.project_id == project.id)).all()
    if not rows:
        raise NotFoundError(
            f"Project has no data collection: {project.name!r} holds no data yet; "
            f"link one with 'annoflow data import --project {project.name} ...' before running"
        )
    known = {str(i) for i, _ in rows} | {str(n) for _, n in rows}
    for key in ("data_collection", "dataset", "data_collection__in", "dataset__in"):
        if key not in params.task_filters:
            continue
        value = params.task_filters[key]
        wanted = value if isinstance(value, list) else [value]
        missing = [str(v) for v in wanted if str(v) not in known]
        if missing:
            names = ", ".join(sorted(str(n) for _, n in rows))
            raise NotFoundError(
                f"Project has no data collection {', '.join(missing)!s} (task_filters.{key}); "
                f"{project.name!r} has: {names}; fix the filter"
            )


def check_target_specification(store: Store, project: ProjectRecord, params: ToTaskParams) -> None:
    """Some matching data unit has a file under ``target_specification_name``.

    Looks at the first matching tasks' data units; a unit that lacks the file later
    fails only its own task.

    Raises:
        NotFoundError: "Target specification not found".
    """
    name = params.target_specification_name or ""
    sample = list(islice(store.iter_tasks(project.id, filters=params.task_filters), _SPEC_SAMPLE))
    units = store.get_data_units({t.data_hash for t in sample}).values()
    if any(name in u.files for u in units):
        return
    have = sorted({k for u in units for k in u.files})
    raise NotFoundError(
        f"Target specification not found: no data unit of {project.name!r} matching the filters has a file "
        f"{name!r} (their files: {', '.join(have) or 'none'}); set target_specification_name to one of them "
        "or import the annotation files under that name"
    )


def check_run(
    store: Store, params: ToTaskParams, registry: PreProcessorRegistry, ready_timeout: float
) -> tuple[RunPlan, str]:
    """Run every critical check; return the plan and the agent's email.

    Raises:
        NotFoundError: unknown project, version or agent, no data collection, no target
            specification, unknown pre-processor.
        ForbiddenError: the agent cannot annotate.
        TransientError: "Pre-processor not active".
        InvalidInputError: the project names a saved version (read-only) or is malformed, parameters
            the pre-processor's model cannot take, "No tasks found
            matching filters", or a filter the store refuses.
    """
    # A ToTask run writes into the tasks it runs on: a saved version (P@N) is refused, not written.
    project = resolve_target(store, str(params.project), "a ToTask run")
    agent = check_agent(store, project, params.agent)
    check_data_collection(store, project, params)
    version = None
    if params.method == "inference":
        # The run's parameters too: a model that cannot take them (not ONNX, wrong input
        # shape, other class names) fails here, before any task is claimed.
        pre = registry.ensure_ready(
            params.pre_processor or "", timeout=ready_timeout, params=params.pre_processor_params
        )
        version = pre.version
    total = count_tasks(store, project.id, params.task_filters)
    if total == 0:
        raise InvalidInputError(
            f"No tasks found matching filters {params.task_filters} in project {project.name!r}; "
            "check task_filters (e.g. 'annoflow tasks list --project NAME') and that tasks exist"
        )
    if params.method == "file":
        check_target_specification(store, project, params)
    return RunPlan(project, total, version), agent
