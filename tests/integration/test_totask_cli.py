"""``annoflow totask run`` with no servers at all, then ``runs list`` and ``runs show``.

The embedded mode: a SQLite store and the filesystem broker under ANNOFLOW_HOME, a
real worker process started by the command, annotation files read from a local
folder allowed by ANNOFLOW_FILE_ROOTS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from common.enums import Role
from common.store import DataFile, DataUnit, Store
from common.workflow import load_workflow
from tests.conftest import FIXTURES
from tests.integration.pipeline_env import ROOT
from tests.integration.totask_env import SIZE, native

pytestmark = pytest.mark.integration


def _annoflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_totask_run_embedded_then_runs_list_and_show(tmp_path: Path) -> None:
    # Given an embedded store with six images whose annotation files sit in a local folder, one of them broken
    home, ann = tmp_path / ".annoflow", tmp_path / "annotations"
    ann.mkdir()
    store = Store.open(f"sqlite:///{home / 'annoflow.db'}")
    project = store.create_project("local", load_workflow(FIXTURES / "apples.yaml"))
    units = []
    for i in range(6):
        path = ann / f"{i}.json"
        path.write_bytes(b"{oops" if i == 5 else native((1, 2, 30, 40), ident=f"f{i}"))
        files = {"image": DataFile(url=f"file:///img/{i}.jpg", is_primary=True), "labels": DataFile(url=str(path))}
        units.append(DataUnit(data_hash=str(uuid.uuid4()), title=f"img-{i}.jpg", meta=SIZE, files=files))
    store.add_data_units(project.id, store.dataset(project.id, "local-data"), units)
    store.set_role(project.id, "bot@x.org", Role.ANNOTATOR)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "name": "Local_Files",
                "project": "local",
                "agent": "bot@x.org",
                "task_filters": {"status": "pending"},
                "method": "file",
                "target_specification_name": "labels",
                "batch_size": 2,
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env.update(ANNOFLOW_HOME=str(home), ANNOFLOW_FILE_ROOTS=str(ann), PYTHONPATH=str(ROOT), COLUMNS="200")

    # When 'annoflow totask run' runs it with one worker process it starts itself
    done = _annoflow(["totask", "run", str(params), "--workers", "1", "--json"], env, tmp_path)

    # Then it succeeds with the metrics, logs the broken file in the seed's form, and needed no server
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "SUCCEEDED"
    assert {k: result["metrics"][k] for k in ("total", "success", "failed", "stand_by")} == {
        "total": 6, "success": 5, "failed": 1, "stand_by": 0,
    }  # fmt: skip
    assert "] Failed: Invalid JSON format in annotation file" in done.stdout + done.stderr
    assert (home / "broker" / "queue").is_dir()
    first = store.get_label_row(project.id, units[0].data_hash).objects
    assert [o["id"] for o in first] == ["f0_0"] and first[0]["provenance"]["method"] == "file"

    # When the runs are listed and this one shown
    listed = _annoflow(["runs", "list", "--project", "local"], env, tmp_path)
    shown = _annoflow(["runs", "show", result["run_id"][:8]], env, tmp_path)

    # Then the list has it, and show gives its parameters, metrics and the failed task with its reason
    assert listed.returncode == 0 and "Local_Files" in listed.stdout and "SUCCEEDED" in listed.stdout
    assert shown.returncode == 0, shown.stderr
    assert '"target_specification_name": "labels"' in shown.stdout
    assert "failed tasks: 1" in shown.stdout
    failed_task = next(t for t in store.iter_tasks(project.id) if t.data_title == "img-5.jpg")
    assert f"[Task {failed_task.uuid}] Failed: Invalid JSON format" in shown.stdout
