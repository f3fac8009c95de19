"""The sequential Runner on SQLite and PostgreSQL: order, retries, staying, limits, CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from common.enums import TaskStatus
from common.runner import Runner
from common.store import DataUnit, Store
from common.store.leases import list_failed
from common.workflow import Workflow, parse_workflow
from tests.helpers import make_project

TWO_AGENTS = {
    "name": "Two agents",
    "start": "First",
    "stages": [
        {"title": "First", "type": "agent", "pathways": {"next": "Second", "drop": "Archive"}},
        {"title": "Second", "type": "agent", "pathways": {"done": "Complete"}},
        {"title": "Complete", "type": "complete"},
        {"title": "Archive", "type": "archive"},
    ],
}
APPLES = ["a.jpg", "b.jpg", "c.jpg"]


@pytest.fixture
def wf() -> Workflow:
    return parse_workflow(TWO_AGENTS)


def test_stages_drain_in_registration_order_in_one_pass(store: Store, wf: Workflow) -> None:
    # Given three tasks in First and handlers for First and Second
    project = make_project(store, wf, APPLES)
    runner = Runner(project="apples", store=store)
    calls: list[tuple[str, str]] = []

    @runner.stage("First")
    def first(unit: DataUnit) -> str:
        calls.append(("First", unit.title))
        return "next"

    @runner.stage("Second")
    def second(unit: DataUnit) -> str:
        calls.append(("Second", unit.title))
        return "done"

    # When the runner runs once with batches of two
    stats = runner(task_batch_size=2)

    # Then First was emptied before Second ran, and every task is complete after one move per stage
    assert [stage for stage, _ in calls] == ["First"] * 3 + ["Second"] * 3
    assert store.counts(project.id) == {wf.stage("Complete").uuid: {TaskStatus.COMPLETED.value: 3}}
    assert stats["First"].applied == 3 and stats["Second"].applied == 3
    for task in store.iter_tasks(project.id):
        assert [e.actor for e in store.events(project.id, task.uuid)] == ["agent:First", "agent:Second"]


def test_failures_are_retried_then_listed(store: Store, wf: Workflow) -> None:
    # Given a handler that fails once on a.jpg and always on b.jpg
    project = make_project(store, wf, APPLES[:2])
    runner = Runner(project="apples", store=store)
    tries: dict[str, int] = {}

    @runner.stage("First")
    def first(unit: DataUnit) -> str:
        tries[unit.title] = tries.get(unit.title, 0) + 1
        if unit.title == "b.jpg" or tries[unit.title] == 1:
            raise ValueError(f"flaky {unit.title}")
        return "drop"

    # When it runs with two retries and no backoff
    stats = runner(num_retries=2, retry_backoff=0.0)

    # Then a.jpg got through on its second try; b.jpg was tried three times and is failed with its error
    assert tries == {"a.jpg": 2, "b.jpg": 3}
    assert (stats["First"].applied, stats["First"].retried, stats["First"].failed) == (1, 3, 1)
    (failed,) = list_failed(store, project.id)
    assert failed.data_title == "b.jpg" and failed.last_error is not None and "flaky b.jpg" in failed.last_error


def test_staying_tasks_are_not_taken_twice_in_a_pass_and_limits_apply(store: Store, wf: Workflow) -> None:
    # Given a handler that keeps every task in First
    project = make_project(store, wf, APPLES)
    runner = Runner(project="apples", store=store)
    seen: list[str] = []

    @runner.stage("First")
    def first(unit: DataUnit) -> None:
        seen.append(unit.title)

    # When the runner runs with at most two tasks per stage, then again without a limit
    limited = runner(max_tasks_per_stage=2, task_batch_size=1)
    full = runner()

    # Then the first pass took two, the second all three once each; none moved
    assert limited["First"].processed == 2 and full["First"].processed == 3
    assert sorted(seen[2:]) == APPLES
    assert store.counts(project.id) == {wf.stage("First").uuid: {TaskStatus.NEW.value: 3}}
    assert store.events(project.id) == []


def test_cli_takes_the_runner_options(store: Store, wf: Workflow) -> None:
    # Given a runner without a project and one task
    make_project(store, wf, APPLES[:1], name="pears")
    runner = Runner(store=store)
    runner.stage("First")(lambda: "drop")

    # When its CLI runs with the documented options
    args = ["--project", "pears", "--num-retries", "1", "--task-batch-size", "5", "--max-tasks-per-stage", "10"]
    result = CliRunner().invoke(runner.cli(), args)

    # Then it ran the stage and printed what it did
    assert result.exit_code == 0, result.output
    assert "First" in result.output and "processed" in result.output
    help_text = CliRunner().invoke(runner.cli(), ["--help"]).output
    for option in ("--refresh-every", "--num-retries", "--task-batch-size", "--max-tasks-per-stage", "--project"):
        assert option in help_text
