"""``annoflow demo`` (what ``make demo`` runs) on a fresh folder: every image routed, and the hints it prints work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ANNOFLOW = Path(sys.executable).parent / "annoflow"


def test_demo_routes_every_image_and_its_next_steps_run(tmp_path: Path) -> None:
    # Given a folder with no annoflow data and no server configured
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env["COLUMNS"] = "200"

    # When the demo runs there
    done = subprocess.run(
        [str(ANNOFLOW), "demo", "--images", "6"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )

    # Then it succeeds and no task is left in an agent stage
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "where every task ended" in done.stdout
    # and a progress bar per agent stage counted its tasks (all 6 triaged; those with blobs go on to be found)
    bars = {
        line.split("━")[0].strip(): line.replace("━", " ").split() for line in done.stdout.splitlines() if "━" in line
    }
    assert bars["Triage"][1] == "6/6" and bars["Find blobs"][2].split("/")[0] == bars["Find blobs"][2].split("/")[1]
    assert "failed 0, stale 0, dead letters 0" in done.stdout
    agent_rows = [line.split("│") for line in done.stdout.splitlines() if line.startswith(("│ Triage", "│ Find blobs"))]
    assert [(row[1].strip(), row[3].strip()) for row in agent_rows] == [("Triage", "0"), ("Find blobs", "0")]
    # and the command it suggests for listing the tasks works when pasted in the same folder
    (hint,) = [line for line in done.stdout.splitlines() if "tasks list --project demo" in line]
    command = hint.split("(")[0].strip()
    listed = subprocess.run(
        command + " --json", shell=True, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    titles = sorted(json.loads(line)["data_title"] for line in listed.stdout.splitlines())
    assert len(titles) == 6 and all(t.endswith(".png") for t in titles)
    # and the export it suggests writes the agents' labels as COCO: the blob boxes in pixels, nothing skipped
    (hint,) = [line for line in done.stdout.splitlines() if "export --project demo" in line]
    exported = subprocess.run(
        hint.split("(")[0].strip(), shell=True, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
    )
    assert exported.returncode == 0 and "skipped" not in exported.stdout, exported.stdout + exported.stderr
    coco = json.loads((tmp_path / "demo.coco.json").read_text(encoding="utf-8"))
    blob = next(c["id"] for c in coco["categories"] if c["name"] == "blob")
    boxes = [a["bbox"] for a in coco["annotations"] if a["category_id"] == blob]
    assert boxes and all(x >= 0 and x + w <= 192 and y >= 0 and y + h <= 128 and w >= 4 for x, y, w, h in boxes)
    # and the agent it points at is there to read
    (where,) = [line for line in done.stdout.splitlines() if "the agent: " in line]
    assert (tmp_path / where.split("the agent: ")[1].split(";")[0]).is_file()
