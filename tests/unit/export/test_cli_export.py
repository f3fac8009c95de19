"""``annoflow export`` and ``annoflow bench export`` through the Typer app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app as cli
from common.store import Store
from common.workflow import Workflow
from tests.helpers import cli_settings
from tests.unit.export.builders import labelled_project


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed_workflow: Workflow) -> Iterator[str]:
    """A labelled project in a SQLite store the CLI is pointed at."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store.open(url)
    labelled_project(store, seed_workflow, tmp_path)
    store.close()
    values = {"ANNOFLOW_STORE_URL": url, "ANNOFLOW_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    with cli_settings(monkeypatch, values):
        yield url


def test_export_command_writes_the_file_and_refuses_to_overwrite(store_url: str, tmp_path: Path) -> None:
    # Given a labelled project in the configured store
    args = ["export", "--project", "orchard", "--format", "coco", "-o", "out/coco.json", "--root", str(tmp_path)]

    # When it is exported from the command line
    first = CliRunner().invoke(cli.app, [*args, "--json"])

    # Then the COCO file is written and the summary printed
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["tasks"], summary["objects"]) == (3, 6)
    assert len(json.loads((tmp_path / "out/coco.json").read_text())["annotations"]) == 5

    # And the same export again fails with one clear line, until --force is given
    again = CliRunner().invoke(cli.app, args)
    assert again.exit_code != 0 and "exists; pass --force" in again.output and "Traceback" not in again.output
    forced = CliRunner().invoke(cli.app, [*args, "--force"])
    assert forced.exit_code == 0 and "exported 3 tasks, 6 objects of orchard as coco" in forced.stdout


def test_export_command_refuses_an_unknown_format_and_a_path_outside(store_url: str, tmp_path: Path) -> None:
    # Given the labelled project, when asked for an unknown format or a path leaving --root
    bad_format = CliRunner().invoke(cli.app, ["export", "--project", "orchard", "-f", "csv", "-o", "x.csv"])
    outside = CliRunner().invoke(
        cli.app, ["export", "--project", "orchard", "-f", "jsonl", "-o", "../x.jsonl", "--root", str(tmp_path)]
    )

    # Then each fails with what is wrong and how to fix it
    assert bad_format.exit_code != 0 and "unknown export format 'csv'; choose one of" in bad_format.output
    assert outside.exit_code != 0 and "is outside the folder" in outside.output
    assert not (tmp_path.parent / "x.jsonl").exists()


def test_bench_export_prints_rates_and_rss(store_url: str) -> None:
    # Given a small benchmark, when it runs
    result = CliRunner().invoke(cli.app, ["bench", "export", "--tasks", "300", "--format", "jsonl", "--json"])

    # Then it prints tasks/s, objects/s and the RSS figures
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert (figures["tasks"], figures["objects"]) == (300, 600)
    assert figures["tasks_per_s"] > 0 and figures["objects_per_s"] > 0
    assert figures["rss_peak_mb"] > 0 and figures["rss_end_mb"] > 0


def test_export_command_reads_project_at_version(store_url: str, tmp_path: Path) -> None:
    # Given version 1 of the labelled project
    from common.versions import create_version

    store = Store.open(store_url)
    create_version(store, "orchard")
    store.close()
    base = ["export", "-f", "jsonl", "--root", str(tmp_path)]

    # When it is exported as orchard@1, as orchard@1 --version 2, and as an unknown or malformed version
    ok = CliRunner().invoke(cli.app, [*base, "--project", "orchard@1", "-o", "v1.jsonl", "--json"])
    conflict = CliRunner().invoke(cli.app, [*base, "--project", "orchard@1", "--version", "2", "-o", "c.jsonl"])
    unknown = CliRunner().invoke(cli.app, [*base, "--project", "orchard@9", "-o", "u.jsonl"])
    malformed = CliRunner().invoke(cli.app, [*base, "--project", "orchard@v1", "-o", "m.jsonl"])

    # Then the version is exported, and each bad request fails with one line saying what and how to fix it
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["version"] == 1 and (tmp_path / "v1.jsonl").exists()
    assert conflict.exit_code == 2 and "'orchard@1' names version 1 but version=2 was given" in conflict.output
    assert unknown.exit_code == 2 and "project 'orchard' has no version 9" in unknown.output
    assert malformed.exit_code == 2 and "'orchard@v1': write PROJECT@N" in malformed.output
    for result in (conflict, unknown, malformed):
        assert "Traceback" not in result.output
    assert not any((tmp_path / f).exists() for f in ("c.jsonl", "u.jsonl", "m.jsonl"))
