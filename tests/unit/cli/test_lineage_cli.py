"""The ``annoflow lineage``, ``annoflow version ...`` and ``annoflow bench versions`` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli import app as cli
from cli import main as cli_main
from common.enums import Action, Role
from common.lineage import record_run_lineage
from common.store import ActionRequest, Store
from common.workflow import Workflow
from tests.helpers import make_project

ADMIN = "chris@acme.com"


@pytest.fixture
def apples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed_workflow: Workflow) -> Iterator[Store]:
    """The CLI's own store under tmp_path, holding project 'apples' with a labelled task and a recorded run."""
    for key in ("ANNOFLOW_STORE_URL", "ANNOFLOW_USER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ANNOFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    cli.settings.cache_clear()
    cli_main.register()
    store = cli.open_store()
    project = make_project(store, seed_workflow, ["a.jpg", "b.jpg"], users={ADMIN: Role.ADMIN})
    first = next(store.iter_tasks(project.id))
    store.save_label_row(store.get_label_row(project.id, first.data_hash).model_copy(update={"objects": [{"id": 1}]}))
    run = store.create_run(project.id, "totask", "pre-annotate", {})
    record_run_lineage(store, run.id, inputs=["apples", "model:/w/det.onnx"], outputs=["apples"])
    yield store
    store.close()
    cli.settings.cache_clear()


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
    return result


def test_version_commands_create_list_diff_restore(apples: Store) -> None:
    # Given version 1 made from the command line
    assert "created version 1" in run("version", "create", "--project", "apples", "--title", "baseline").stdout
    # When nothing changed, create again returns it
    assert "nothing changed since version 1" in run("version", "create", "--project", "apples").stdout

    # When a task is submitted and version 2 saved
    project = apples.get_project("apples")
    task = next(apples.iter_tasks(project.id))
    apples.act(ActionRequest(task.uuid, Action.ASSIGN, assignee=ADMIN, by=ADMIN))
    apples.act(ActionRequest(task.uuid, Action.SUBMIT, by=ADMIN))
    run("version", "create", "--project", "apples", "--title", "after review")

    # Then list shows both, diff shows the stage move, restore makes a project
    listing = run("version", "list", "--project", "apples").stdout
    assert "baseline" in listing and "after review" in listing
    diff = json.loads(run("version", "diff", "--project", "apples", "1", "2", "--json").stdout)
    assert diff["stage_changes_total"] == 1 and diff["stage_changes"][0]["stage_b"] == "Review 1"
    assert "Review 1" in run("version", "diff", "--project", "apples", "1", "2").stdout
    out = run("version", "restore", "--project", "apples", "--version", "1", "--as", "apples-v1").stdout
    assert "as new project 'apples-v1'" in out and apples.get_project("apples-v1")
    assert "in place" in run("version", "restore", "--project", "apples", "--version", "1", "--in-place").stdout


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "json", "html"])
def test_lineage_formats(apples: Store, fmt: str, tmp_path: Path) -> None:
    # When the project's lineage is drawn in each format, to stdout and to a file
    out = run("lineage", "--project", "apples", "--format", fmt).stdout
    target = tmp_path / f"lineage.{fmt}"
    assert (
        "wrote 3 nodes, 3 connections"
        in run("lineage", "--project", "apples", "--format", fmt, "-o", str(target)).stdout
    )

    # Then each names the run, the model and the project
    assert target.read_text() == out
    for title in ("pre-annotate", "det.onnx", "apples"):
        assert title in out
    if fmt == "mermaid":
        assert out.startswith("flowchart LR") and " --> " in out
    if fmt == "dot":
        assert out.startswith("digraph lineage {") and " -> " in out
    if fmt == "json":
        data = json.loads(out)
        assert len(data["nodes"]) == 3 and len(data["edges"]) == 3 and data["scope"] == "project"
    if fmt == "html":
        # Nothing is loaded from anywhere: no external script, style, image or font.
        assert (
            "<script src" not in out
            and "<link" not in out
            and "http://" not in out.replace("http://www.w3.org/2000/svg", "")
        )
        assert "https://" not in out and "default-src 'none'" in out


def test_lineage_errors_say_how_to_fix(apples: Store) -> None:
    # When the format is unknown, or the task scope has no task
    bad_format = run("lineage", "--format", "pdf", "--project", "apples", code=2)
    no_task = run("lineage", "--scope", "task", code=2)

    # Then one line says what is wrong and how to fix it
    assert bad_format.stderr.strip() == "error: unknown --format 'pdf'; use one of mermaid, dot, json, html"
    assert "pass --task UUID" in no_task.stderr and "Traceback" not in no_task.output


def test_bench_versions_reports_the_size_ratio() -> None:
    # When the versions benchmark runs small
    cli_main.register()
    out = run("bench", "versions", "--tasks", "400", "--versions", "3", "--change", "0.05", "--json").stdout

    # Then it reports the size of 3 versions against one full copy, well under 3 copies
    figures = json.loads(out)
    assert figures["tasks"] == 400 and len(figures["create_version_seconds"]) == 3
    assert figures["unchanged_create_made_new_version"] is False
    assert 0 < figures["size_ratio_vs_one_full_copy"] <= 1.5
