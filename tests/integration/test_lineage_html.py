"""The lineage HTML page draws its graph in a real browser (headless Chromium), offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.lineage import NodeSettings, Ref, record_run_lineage
from common.store import Store
from common.versions import create_version
from common.workflow import load_workflow
from tests.helpers import make_project
from tests.servers import chromium

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent.parent / "fixtures"
ANNOFLOW = Path(sys.executable).parent / "annoflow"


def test_html_page_draws_every_node_without_network(tmp_path: Path) -> None:
    browser = chromium()
    # Given a store with a version, a ToTask-like run that read it and a model, and wrote tasks and a file
    db = tmp_path / "store.db"
    store = Store.open(f"sqlite:///{db}")
    project = make_project(store, load_workflow(FIXTURES / "apples.yaml"), ["a.jpg", "b.jpg"])
    create_version(store, "apples")
    run = store.create_run(project.id, "totask", "pre-annotate <v1>", {})
    outputs = [Ref.task(t.uuid) for t in store.iter_tasks(project.id)]
    archive = Ref.file("/exports/apples.zip").model_copy(
        update={"settings": NodeSettings(title="Archive", icon="archive", url="/files/1", url_title="Download")}
    )
    assert record_run_lineage(store, run.id, inputs=["apples@1", "model:/w/det.onnx"], outputs=[*outputs, archive])
    store.close()

    # When the CLI writes the workspace view as HTML and Chromium renders it (no network, scripts on)
    page = tmp_path / "lineage.html"
    env = {**os.environ, "ANNOFLOW_STORE_URL": f"sqlite:///{db}"}
    subprocess.run(
        [str(ANNOFLOW), "lineage", "--scope", "workspace", "--format", "html", "-o", str(page)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout

    # Then the script drew one SVG card per node and one path per connection
    assert '<svg id="lineage-svg"' in dom
    cards = re.findall(r'<g class="lineage-node kind-([a-z_]+)"', dom)
    assert sorted(cards) == sorted(["project", "project_version", "run", "file", "task", "task", "file"])
    assert len(re.findall(r'<path class="lineage-edge"', dom)) == 6
    assert 'data-drawn="7"' in dom and "workspace scope: 7 nodes, 6 connections" in dom
    # And titles are drawn as text (escaped), with the card's link
    assert "pre-annotate &lt;v1&gt;" in dom and "apples v1" in dom and "det.onnx" in dom
    assert '<a href="/files/1">' in dom
