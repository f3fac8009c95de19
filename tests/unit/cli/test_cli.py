"""The ``annoflow`` command: projects, data, users, stages, tasks, task actions, bench, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli import app as cli
from tests.helpers import cli_settings

FIXTURES = Path(__file__).parents[2] / "fixtures"
ANNOFLOW = Path(sys.executable).parent / "annoflow"
APPLES = [f"apples_0{i}.jpg" for i in range(1, 6)]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A store of its own under tmp_path; settings re-read for this test."""
    values = {"ANNOFLOW_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    with cli_settings(monkeypatch, values):
        yield values


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
    return result


def error_of(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def tasks(*args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run("tasks", "list", "--json", *args).stdout.splitlines()]


def stage_counts(project: str = "apples") -> dict[str, dict[str, int]]:
    return dict(json.loads(run("stages", "--project", project, "--json").stdout))


@pytest.fixture
def apples(env: dict[str, str], tmp_path: Path) -> Path:
    """Project 'apples' (the seed workflow) with five images imported, an admin and an annotator."""
    folder = tmp_path / "orchard"
    folder.mkdir()
    for name in APPLES:
        (folder / name).write_bytes(b"jpg")
    run("project", "create", "-f", str(FIXTURES / "apples.yaml"), "--name", "apples")
    run("data", "import", str(folder), "--project", "apples")
    run("users", "add", "chris@acme.com", "--project", "apples", "--role", "admin")
    run("users", "add", "ann@acme.com", "--project", "apples", "--role", "annotator", "--name", "Ann")
    return folder


def test_project_create_list_show(env: dict[str, str]) -> None:
    # When a project is created from the seed workflow
    created = run("project", "create", "-f", str(FIXTURES / "apples.yaml"), "--name", "apples", "--description", "d")

    # Then its stages and pathways are shown, and it is listed
    assert "created project apples" in created.stdout and "approve -> Complete" in created.stdout
    assert "apples" in run("project", "list").stdout
    # And 'show' prints every stage and pathway UUID
    shown = run("project", "show", "apples").stdout
    for title in ("Annotate 1", "Review 1", "Complete"):
        assert title in shown
    assert shown.count("-") >= 5 * 4 and "reject -> Annotate 1" in shown


def test_bad_workflow_file_shows_its_problems(env: dict[str, str], tmp_path: Path) -> None:
    # Given a workflow whose review stage lacks a reject pathway and whose pathway goes nowhere
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: Bad\nstart: A\nstages:\n"
        "  - {title: A, type: annotation, pathways: {submit: Nowhere}}\n"
        "  - {title: R, type: review, pathways: {approve: Done}}\n"
        "  - {title: Done, type: complete}\n"
    )

    # When a project is created from it, Then exit 2 lists each problem with the file and stage
    result = run("project", "create", "-f", str(bad), "--name", "x", code=2)
    assert f"error: {bad}: invalid workflow" in result.stderr
    assert "stage 'A': pathway 'submit' goes to unknown stage 'Nowhere'" in result.stderr
    assert "stage 'R'" in result.stderr and "'reject'" in result.stderr
    assert "Traceback" not in result.output


def test_seed_example_through_the_cli(apples: Path) -> None:
    # Given five apples NEW in Annotate 1
    assert stage_counts()["Annotate 1"] == {"NEW": 5}

    # When each is assigned and submitted, then all are approved but apples_05, which is rejected
    for t in tasks("--project", "apples", "--stage", "Annotate 1"):
        run("task", "assign", t["uuid"], "--user", "ann@acme.com")
        run("task", "submit", t["uuid"])
    for t in tasks("--project", "apples", "--stage", "Review 1"):
        run("task", "assign", t["uuid"], "--user", "chris@acme.com")
        verdict = "reject" if t["data_title"] == "apples_05.jpg" else "approve"
        assert f"/ {'REOPENED' if verdict == 'reject' else 'COMPLETED'}" in run("task", verdict, t["uuid"]).stdout

    # Then four are COMPLETED in Complete and apples_05 is back in Annotate 1, REOPENED
    assert stage_counts() == {"Annotate 1": {"REOPENED": 1}, "Review 1": {}, "Complete": {"COMPLETED": 4}}
    (back,) = tasks("--project", "apples", "--status", "reopened")
    assert back["data_title"] == "apples_05.jpg" and back["stage_title"] == "Annotate 1"
    done = tasks("--project", "apples", "--stage", "Complete")
    assert sorted(t["data_title"] for t in done) == APPLES[:4]
    # And the table view renders the counts
    assert "REOPENED" in run("stages", "--project", "apples").stdout


def test_tasks_list_filters_and_pages(apples: Path) -> None:
    # Given one task assigned to Ann
    first = tasks("--project", "apples")[0]
    run("task", "assign", first["uuid"], "--user", "ann@acme.com")

    # When tasks are listed two at a time
    page = run("tasks", "list", "--project", "apples", "--limit", "2")

    # Then the table shows two and says how to see the next page
    assert "apples_01.jpg" in page.stdout and "apples_03.jpg" not in page.stdout
    assert "more tasks match: add --after 2 for the next page" in page.stdout
    assert [t["data_title"] for t in tasks("--project", "apples", "--after", "2", "--limit", "2")] == APPLES[2:4]
    # And the filters narrow the listing
    assert [t["uuid"] for t in tasks("--project", "apples", "--assignee", "ann@acme.com")] == [first["uuid"]]
    assert len(tasks("--project", "apples", "--assignee", "none")) == 4
    assert len(tasks("--project", "apples", "--status", "NEW", "--status", "assigned")) == 5
    assert [t["data_title"] for t in tasks("--project", "apples", "--data-title", "_03")] == ["apples_03.jpg"]
    assert len(tasks("--project", "apples", "--dataset", "orchard")) == 5
    assert tasks("--project", "apples", "--stage", "Review 1") == []


def test_skip_release_reopen(apples: Path) -> None:
    # Given a task assigned to Ann
    t1, t2 = (t["uuid"] for t in tasks("--project", "apples", "--limit", "2"))
    run("task", "assign", t1, "--user", "ann@acme.com")

    # When she releases it and skips another
    assert "Annotate 1 / RELEASED" in run("task", "release", t1).stdout
    assert "Annotate 1 / SKIPPED" in run("task", "skip", t2, "--by", "ann@acme.com").stdout

    # And a completed task is reopened by the admin (ANNOFLOW_USER acts when --by is left out)
    run("task", "assign", t1, "--user", "chris@acme.com")
    run("task", "submit", t1)
    run("task", "assign", t1, "--user", "chris@acme.com")
    run("task", "approve", t1)
    refused = error_of(run("task", "reopen", t1, "--by", "ann@acme.com", code=2))
    os.environ["ANNOFLOW_USER"] = "chris@acme.com"
    cli.settings.cache_clear()
    try:
        reopened = run("task", "reopen", t1).stdout
    finally:
        del os.environ["ANNOFLOW_USER"]
        cli.settings.cache_clear()

    # Then each lands where the transition table says; the annotator may not reopen
    assert "ann@acme.com cannot reopen" in refused and "team_manager" in refused
    assert "Annotate 1 / REOPENED" in reopened


def test_agent_proceed_through_a_router(env: dict[str, str], tmp_path: Path) -> None:
    # Given a project whose first stage is an agent stage feeding a 100% router
    run("project", "create", "-f", str(FIXTURES / "agent_pipeline.yaml"), "--name", "agents")
    manifest = tmp_path / "units.jsonl"
    manifest.write_text(json.dumps({"title": "a.jpg", "files": {"image": {"url": "file:///a.jpg"}}}) + "\n")
    run("data", "import", str(manifest), "--project", "agents")
    (task,) = tasks("--project", "agents")

    # When the task proceeds along 'labelled', and a wrong pathway is tried
    moved = run("task", "proceed", task["uuid"], "--pathway", "labelled").stdout
    wrong = error_of(run("task", "proceed", task["uuid"], "--pathway", "nope", code=2))

    # Then it went through the router to Review 1; the error lists the stage's pathways
    assert "Review 1 / NEW" in moved
    assert "has no pathway 'nope'" in wrong or "not an action" in wrong
    # And routers are neither counted as stages nor listable
    assert "Split" not in stage_counts("agents")
    assert "is a router" in error_of(run("tasks", "list", "--project", "agents", "--stage", "Split", code=2))


def test_consensus_subtasks_are_picked_for_the_user(env: dict[str, str], tmp_path: Path) -> None:
    # Given a consensus project with one unit and two annotators and a reviewer
    run("project", "create", "-f", str(FIXTURES / "consensus.yaml"), "--name", "cons")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "pear.jpg").write_bytes(b"jpg")
    run("data", "import", str(tmp_path / "imgs"), "--project", "cons")
    for email, role in (("a@x.io", "annotator"), ("b@x.io", "annotator"), ("r@x.io", "reviewer")):
        run("users", "add", email, "--project", "cons", "--role", role)
    (task,) = tasks("--project", "cons")

    # When both annotators take a subtask and submit it, without naming subtasks
    run("task", "assign", task["uuid"], "--user", "a@x.io")
    twice = error_of(run("task", "assign", task["uuid"], "--user", "a@x.io", code=2))
    assert "consensus-2@b@x.io" not in run("task", "assign", task["uuid"], "--user", "b@x.io").stdout
    run("task", "submit", task["uuid"], "--by", "a@x.io")
    after_both = run("task", "submit", task["uuid"], "--by", "b@x.io").stdout

    # Then the task moved to the consensus review, where the reviewer picks b's branch
    assert "a@x.io already holds one" in twice and "--subtask UUID" in twice
    assert "Consensus 1 Review / NEW" in after_both
    run("task", "assign", task["uuid"], "--user", "r@x.io")
    assert "Complete / COMPLETED" in run("task", "approve", task["uuid"], "--branch", "b@x.io").stdout


def test_users_roles_and_certifications(apples: Path) -> None:
    # When a certification is granted and users are listed
    run("users", "certify", "ann@acme.com", "fruit-expert")
    listing = run("users", "list", "--project", "apples").stdout

    # Then roles and certifications show
    assert "ann@acme.com" in listing and "annotator" in listing and "fruit-expert" in listing
    # And a bad role or email is refused in one line
    assert "'king' is not one of" in error_of(
        run("users", "add", "x@acme.com", "--project", "apples", "--role", "king", code=2)
    )
    assert "is not an email address" in error_of(
        run("users", "add", "nobody", "--project", "apples", "--role", "admin", code=2)
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("tasks", "list"), "Missing option '--project'. (see 'annoflow tasks list --help')"),
        (("task", "frob", "x"), "No such command 'frob'."),
        (("tasks", "list", "--project", "apples", "--status", "bogus"), "'bogus' is not one of"),
        (("tasks", "list", "--project", "nope"), "no project 'nope'; projects: apples"),
        (("task", "submit", "no-such-task"), "no task no-such-task; list tasks with"),
        (("data", "import", "missing-dir", "--project", "apples"), "does not exist; pass a folder"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(apples: Path, args: tuple[str, ...], expected: str) -> None:
    # When a command is misused, Then one line says what is wrong and how to fix it, exit code 2
    assert expected in error_of(run(*args, code=2))


def test_reimport_and_bad_manifest_import_nothing(apples: Path, tmp_path: Path) -> None:
    # Given a manifest whose third line is broken
    manifest = tmp_path / "more.jsonl"
    good = {"title": "new.jpg", "files": {"image": {"url": "file:///new.jpg"}}}
    other = {"title": "n2.jpg", "files": {"image": {"url": "file:///n2.jpg"}}}
    manifest.write_text(f"{json.dumps(good)}\n{json.dumps(other)}\n{{bad\n")

    # When it and the already imported folder are imported
    bad_line = error_of(run("data", "import", str(manifest), "--project", "apples", code=2))
    again = error_of(run("data", "import", str(apples), "--project", "apples", code=2))

    # Then both are refused clearly and the project still holds its five tasks
    assert "more.jsonl line 3: not valid JSON" in bad_line
    assert "data unit 'apples_01.jpg'" in again and "is already imported" in again
    assert sum(sum(v.values()) for v in stage_counts().values()) == 5


def test_real_process_prints_one_line_and_exits_2(env: dict[str, str]) -> None:
    # When the installed console script is run on a project that does not exist
    proc = subprocess.run(
        [str(ANNOFLOW), "stages", "--project", "ghost"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it exits 2 with a single line on stderr and no traceback
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: no project 'ghost'; projects: none yet ('annoflow project create')"
    ]


def test_bench_store_small(env: dict[str, str], tmp_path: Path) -> None:
    # When the store benchmark runs on a few hundred tasks
    figures = json.loads(run("bench", "store", "--tasks", "300", "--json", "--db", str(tmp_path / "b.db")).stdout)

    # Then it reports import rate, first-page timings with their query plans, and iteration memory
    assert figures["tasks"] == 300 and figures["import"]["units_per_s"] > 0
    page = figures["first_page"]["big_stage_status_new"]
    assert page["rows"] == 50 and "ix_tasks_project_stage_status" in page["plan"]
    assert "ix_tasks_project_stage_id" in figures["first_page"]["big_stage_any_status"]["plan"]
    assert "ix_tasks_project_id" in figures["first_page"]["whole_project"]["plan"]
    assert figures["iterate_all"]["tasks"] == 300
    # And it refuses to reuse a database file
    assert "needs a fresh file" in error_of(
        run("bench", "store", "--tasks", "10", "--db", str(tmp_path / "b.db"), code=2)
    )


def test_invalid_setting_is_one_line(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a store URL of an unsupported kind
    monkeypatch.setenv("ANNOFLOW_STORE_URL", "mysql://db/annoflow")
    cli.settings.cache_clear()

    # When any store command runs, Then one line names the setting and the URL forms that work
    line = error_of(run("project", "list", code=2))
    assert "invalid setting ANNOFLOW_STORE_URL" in line and "use sqlite:///PATH or postgresql://" in line
