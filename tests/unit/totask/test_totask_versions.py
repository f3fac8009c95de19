"""A saved version (``project@N``) as a ToTask run's project: read-only, so the run is refused, and nothing written.

A ToTask run writes labels into the tasks it runs on; a saved version is a snapshot
that runs and exports read and nothing writes. ``P@N`` is resolved first, so a
malformed reference and an unknown version say so; a version that exists is refused
with the two ways on (the project as it is now, or the version restored as a new project).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app as cli
from common.enums import Role
from common.errors import InvalidInputError, NotFoundError
from common.settings import Settings
from common.store import Store
from common.versions import create_version, list_versions, resolve_target
from common.workflow import Workflow
from producer.totask.action import ToTaskAction, ToTaskOptions
from tests.helpers import cli_settings, make_project

BOT = "bot@annoflow.test"
READ_ONLY = "'apples@1' is saved version 1 of 'apples', which is read-only, and a ToTask run writes labels"


def _params(project: str) -> dict[str, Any]:
    return {
        "name": "File_Based_Annotation",
        "project": project,
        "agent": BOT,
        "task_filters": {"data_collection": "fruit"},
        "method": "file",
        "target_specification_name": "annotation_data",
    }


@pytest.fixture
def versioned(store: Store, seed_workflow: Workflow) -> Store:
    """Project 'apples' (two data units, an annotator agent) with version 1 saved."""
    make_project(store, seed_workflow, ["a.jpg", "b.jpg"], users={BOT: Role.ANNOTATOR})
    create_version(store, "apples", title="v1")
    return store


def _start(store: Store, tmp: Path, project: str) -> dict[str, Any]:
    options = ToTaskOptions(workers=0, ready_timeout=0.2)
    return ToTaskAction(_params(project), store=store, settings=Settings(home=tmp / "home"), options=options).start()


def test_a_run_on_a_saved_version_is_refused_and_writes_nothing(versioned: Store, tmp_path: Path) -> None:
    # Given version 1 of 'apples'
    store = versioned
    project = store.get_project("apples")
    saved = list_versions(store, "apples")

    # When a ToTask run is started on apples@1
    result = _start(store, tmp_path, "apples@1")

    # Then it fails before any work, saying the version is read-only and how to go on
    assert result["status"] == "FAILED"
    assert READ_ONLY in result["message"]
    assert "--project apples" in result["message"]
    assert "annoflow version restore --project apples --version 1 --as apples-v1" in result["message"]
    # And the run is recorded FAILED under the project, no task claimed, no label row written, the version as it was
    run = store.get_run(result["run_id"])
    assert run.status == "FAILED" and run.project_id == project.id
    tasks = list(store.iter_tasks(project.id))
    assert all(t.lease_token is None and t.attempts == 0 for t in tasks)
    assert all(store.get_label_row(project.id, t.data_hash).version == 0 for t in tasks)
    assert list_versions(store, "apples") == saved


@pytest.mark.parametrize(
    ("project", "message"),
    [
        ("apples@7", "project 'apples' has no version 7; list them with 'annoflow version list --project apples'"),
        ("apples@x", "'apples@x': write PROJECT@N"),
        ("apples@", "'apples@': write PROJECT@N"),
        ("@1", "'@1': write PROJECT@N"),
        ("pears@1", "no project 'pears'"),
    ],
)
def test_an_unknown_or_malformed_version_says_so(versioned: Store, tmp_path: Path, project: str, message: str) -> None:
    # When a run is started on an unknown or malformed version, then it fails with what is wrong
    result = _start(versioned, tmp_path, project)
    assert result["status"] == "FAILED" and message in result["message"], result["message"]


def test_resolve_target_tells_the_three_cases_apart(versioned: Store) -> None:
    # Given version 1, then the live project resolves, the version is refused, a bad one is its own error
    assert resolve_target(versioned, "apples", "a ToTask run").name == "apples"
    with pytest.raises(InvalidInputError, match="is saved version 1 of 'apples', which is read-only"):
        resolve_target(versioned, "apples@1", "a ToTask run")
    with pytest.raises(InvalidInputError, match="is saved version 1 of 'apples', which is read-only"):
        resolve_target(versioned, "apples@latest", "a ToTask run")
    with pytest.raises(NotFoundError, match="has no version 2"):
        resolve_target(versioned, "apples@2", "a ToTask run")
    with pytest.raises(InvalidInputError, match="write PROJECT@N"):
        resolve_target(versioned, "apples@two", "a ToTask run")


@pytest.fixture
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed_workflow: Workflow) -> Iterator[Store]:
    """The versioned project in a SQLite store the CLI is pointed at, and a params file beside it."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store.open(url)
    make_project(store, seed_workflow, ["a.jpg", "b.jpg"], users={BOT: Role.ANNOTATOR})
    create_version(store, "apples")
    (tmp_path / "params.json").write_text(json.dumps(_params("pears")))  # --project names the one to run on
    values = {"ANNOFLOW_STORE_URL": url, "ANNOFLOW_HOME": str(tmp_path / "home"), "COLUMNS": "300"}
    with cli_settings(monkeypatch, values):
        yield store
    store.close()


@pytest.mark.parametrize(
    ("project", "message"),
    [
        ("apples@1", READ_ONLY),
        ("apples@7", "project 'apples' has no version 7"),
        ("apples@1.5", "'apples@1.5': write PROJECT@N"),
    ],
)
def test_totask_run_refuses_a_version_before_recording_a_run(
    cli_store: Store, tmp_path: Path, project: str, message: str
) -> None:
    # When `annoflow totask run` is given --project P@N
    args = ["totask", "run", str(tmp_path / "params.json"), "--workers", "0", "--project", project]
    result = CliRunner().invoke(cli.app, args)

    # Then it exits 2 with one line saying what is wrong, before any run is recorded
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert cli_store.list_runs() == []


def test_totask_run_project_option_replaces_the_parameters_project(cli_store: Store, tmp_path: Path) -> None:
    # Given the parameters name 'pears' (no such project), when --project names the live project 'apples'
    args = ["totask", "run", str(tmp_path / "params.json"), "--workers", "0", "--project", "apples", "--json"]
    result = CliRunner().invoke(cli.app, args)

    # Then the run goes on to its checks on that project (its units have no annotation files: FAILED, exit 1)
    assert result.exit_code == 1, result.output
    assert "Target specification not found" in json.loads(result.stdout)["message"]
    [run] = cli_store.list_runs()
    assert run.project_id == cli_store.get_project("apples").id
