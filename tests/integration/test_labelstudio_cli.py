"""``annoflow labelstudio link | push | pull`` as a user runs them, against a real Label Studio; a review's reject."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app as cli
from common.labelstudio import LabelStudioClient
from tests.helpers import cli_settings
from tests.labelstudio.helpers import annotate, box, choice, labelled_store
from tests.labelstudio.server import LabelStudio

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(tmp_path: Path, ls: LabelStudio, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The CLI's settings: a store of this test's own and this Label Studio (the token swappable per test)."""
    values = {
        "ANNOFLOW_HOME": str(tmp_path / "home"),
        "ANNOFLOW_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "ANNOFLOW_LABELSTUDIO_URL": ls.url,
        "ANNOFLOW_LABELSTUDIO_TOKEN": ls.token,
        "ANNOFLOW_LABELSTUDIO_LOCAL_FILES_ROOT": str(ls.files_root),
        "COLUMNS": "200",
    }
    with cli_settings(monkeypatch, values):
        yield monkeypatch


@dataclass
class Done:
    returncode: int
    stdout: str


def _run(*args: str) -> Done:
    """The ``annoflow labelstudio`` group in process, as the command line runs it (stderr in the output)."""
    result = CliRunner().invoke(cli.app, ["labelstudio", *args])
    return Done(result.exit_code, result.output)


def test_link_push_pull_from_the_command_line_and_a_rejected_review_goes_back(
    tmp_path: Path, ls: LabelStudio, cli_env: pytest.MonkeyPatch
) -> None:
    # Given a project with one image, and the CLI pointed at this store and Label Studio
    store, pid = labelled_store(tmp_path, ls, "cli", ["c1"])
    stage = ["--project", "cli", "--stage", "Annotate 1"]

    # When the annotation stage is linked and pushed twice
    linked = _run("link", *stage)
    assert linked.returncode == 0, linked.stdout
    found = re.search(r"Label Studio project (\d+)", linked.stdout)
    assert found, linked.stdout
    ls_project = int(found.group(1))
    pushed, again = _run("push", *stage), _run("push", *stage)

    # Then each says what it did, and Label Studio holds the task once
    assert "pushed 1 tasks (0 were in Label Studio already)" in pushed.stdout, pushed.stdout
    assert "pushed 0 tasks (1 were in Label Studio already)" in again.stdout, again.stdout
    client = LabelStudioClient(ls.url, ls.token)
    try:
        (task,) = client.tasks(ls_project)

        # When it is annotated there and pulled twice
        annotate(ls, task["id"], [box("apple")])
        pulled, repeat = _run("pull", *stage), _run("pull", *stage)

        # Then the first applies the submit as the annotator and the second applies nothing
        assert f"submit by {ls.email}" in pulled.stdout and "1 applied, 0 applied before, 0 reported" in pulled.stdout
        assert "0 applied, 1 applied before, 0 reported" in repeat.stdout, repeat.stdout

        # When the review stage is linked and pushed, and the reviewer rejects the task there
        review = ["--project", "cli", "--stage", "Review 1"]
        relinked = _run("link", *review)
        found = re.search(r"Label Studio project (\d+)", relinked.stdout)
        assert relinked.returncode == 0 and found, relinked.stdout
        assert "pushed 1 tasks" in _run("push", *review).stdout
        (rtask,) = client.tasks(int(found.group(1)))
        annotate(ls, rtask["id"], [box("apple"), choice("reject")])
        rejected = _run("pull", *review)

        # Then the task is back in Annotate 1, reopened by the reviewer's reject, with the box kept
        assert f"reject by {ls.email}" in rejected.stdout, rejected.stdout
        (t,) = list(store.iter_tasks(pid, None, {}))
        t = store.get_task(t.uuid)
        assert (store.workflow(pid).stages[t.stage_uuid].title, t.status.value) == ("Annotate 1", "REOPENED")
        assert store.events(pid)[-1].actor == ls.email
        assert [o["class_id"] for o in store.get_label_row(pid, "cli-c1").objects] == ["apple"]

        # When the annotator redoes it in the same Label Studio task (a new annotation) and it is pulled
        assert "pushed 0 tasks (1 were in Label Studio already)" in _run("push", *stage).stdout
        annotate(ls, task["id"], [box("pear")])
        redone = _run("pull", *stage)
    finally:
        client.close()

    # Then the new annotation is applied (the old one stays applied once) and the task is in review again
    assert "1 applied, 1 applied before, 0 reported" in redone.stdout, redone.stdout
    t = store.get_task(t.uuid)
    assert store.workflow(pid).stages[t.stage_uuid].title == "Review 1"
    assert [o["class_id"] for o in store.get_label_row(pid, "cli-c1").objects] == ["pear"]
    store.close()


def test_cli_errors_are_one_line_and_never_show_the_token(
    tmp_path: Path, ls: LabelStudio, cli_env: pytest.MonkeyPatch
) -> None:
    # Given a project whose stage is not linked
    store, _ = labelled_store(tmp_path, ls, "errs", ["e1"])
    store.close()

    # When pull runs on an unlinked stage, link on the complete stage, and link with a wrong token
    cases = [
        (
            ls.token,
            ["pull", "--project", "errs", "--stage", "Annotate 1"],
            "is not linked; run annoflow labelstudio link",
        ),
        (ls.token, ["link", "--project", "errs", "--stage", "Complete"], "only annotation and review stages"),
        (ls.token[:-4] + "AAAA", ["link", "--project", "errs", "--stage", "Annotate 1"], "token"),
    ]
    for token, args, expected in cases:
        cli_env.setenv("ANNOFLOW_LABELSTUDIO_TOKEN", token)
        done = _run(*args)

        # Then each fails with one line that says what is wrong, and no traceback or token
        out = done.stdout.strip()
        assert done.returncode != 0 and expected in out, out
        assert len(out.splitlines()) == 1 and "Traceback" not in out, out
        assert ls.token[:20] not in out
