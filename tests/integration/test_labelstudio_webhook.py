"""Label Studio webhooks against a real Label Studio: an annotation submitted there moves its annoflow task once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli import app as cli
from common.labelstudio import WEBHOOK_SECRET_HEADER, LabelStudioClient, get_link, link, push
from common.sdk import AnnotationStage, Client
from producer.labelstudio import Delivery, WebhookApp, WebhookServer
from tests.helpers import cli_settings
from tests.labelstudio.helpers import annotate, box, labelled_store
from tests.labelstudio.server import LabelStudio
from tests.servers import free_port

pytestmark = pytest.mark.integration
SECRET = "webhook-secret-for-tests"
ANNOFLOW = Path(sys.executable).parent / "annoflow"


@pytest.fixture
def env(tmp_path: Path, ls: LabelStudio, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The CLI's settings: a store of this test's own, this Label Studio, the webhook secret."""
    values = {
        "ANNOFLOW_HOME": str(tmp_path / "home"),
        "ANNOFLOW_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "ANNOFLOW_LABELSTUDIO_URL": ls.url,
        "ANNOFLOW_LABELSTUDIO_TOKEN": ls.token,
        "ANNOFLOW_LABELSTUDIO_WEBHOOK_SECRET": SECRET,
        "COLUMNS": "200",
    }
    with cli_settings(monkeypatch, values):
        yield values


def _wait(what: str, done: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_s} s", pytrace=False)
        time.sleep(0.1)


def _hook(project: str, url: str) -> str:
    result = CliRunner().invoke(
        cli.app, ["labelstudio", "hook", "--project", project, "--stage", "Annotate 1", "--url", url]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_submitted_annotation_moves_its_task_once(
    tmp_path: Path, ls: LabelStudio, client: LabelStudioClient, env: dict[str, str]
) -> None:
    # Given a linked, pushed annotation stage and our webhook app on a loopback port, with a secret
    store, pid = labelled_store(tmp_path, ls, "hooked", ["h1", "h2"])
    lnk = link(store, client, "hooked", "Annotate 1")
    push(store, client, lnk, str(ls.files_root))
    deliveries: list[Delivery] = []
    app_client = LabelStudioClient(ls.url, ls.token)
    server = WebhookServer(("127.0.0.1", free_port()), WebhookApp(store, app_client, SECRET, deliveries.append))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.port}/webhook"
    try:
        # When the webhook is registered twice through the CLI
        first, second = _hook("hooked", url), _hook("hooked", url)

        # Then Label Studio holds one webhook to our URL, with the secret header
        assert "registered" in first and "already" not in first and "already registered" in second
        (hook,) = [h for h in client.webhooks(lnk.ls_project) if h["url"] == url]
        assert hook["headers"] == {WEBHOOK_SECRET_HEADER: SECRET}
        assert set(hook["actions"]) == {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}

        # When h1 is annotated in Label Studio
        tasks = {t["data"]["title"]: t for t in client.tasks(lnk.ls_project)}
        annotate(ls, tasks["h1"]["id"], [box("pear")])

        # Then h1 reaches review with the annotator's box, without any pull
        h1 = next(t.uuid for t in store.iter_tasks(pid, None, {}) if t.data_title == "h1")
        wf = store.workflow(pid)
        _wait("h1 did not reach Review 1", lambda: wf.stages[store.get_task(h1).stage_uuid].title == "Review 1")
        assert store.events(pid)[-1].actor == ls.email
        (obj,) = store.get_label_row(pid, "hooked-h1").objects
        assert obj["class_id"] == "pear" and obj["properties"]["annotator"] == ls.email
        _wait("no delivery recorded", lambda: len(deliveries) == 1)
        assert deliveries[0].outcome.value == "applied"

        # When the same webhook is delivered again
        events = len(store.events(pid))
        again = httpx.post(url, json=deliveries[0].payload, headers={WEBHOOK_SECRET_HEADER: SECRET}, timeout=10)

        # Then it is unchanged and nothing changed
        assert again.status_code == 200 and again.json()["result"] == "unchanged"
        assert len(store.events(pid)) == events

        # When h2 moves on in annoflow first, then is annotated in Label Studio
        sdk = Client(store).get_project("hooked")
        stage = sdk.workflow.get_stage(name="Annotate 1", type_=AnnotationStage)
        h2 = next(t for t in stage.get_tasks() if t.data_title == "h2")
        h2.assign(ls.email)
        h2.submit()
        events = len(store.events(pid))
        annotate(ls, tasks["h2"]["id"], [box("plum")])

        # Then its delivery is reported, not applied
        _wait("h2's delivery not recorded", lambda: len(deliveries) == 3)
        assert deliveries[2].outcome.value == "reported" and "moved on" in deliveries[2].detail
        assert len(store.events(pid)) == events
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        app_client.close()
        store.close()


def test_serve_command_applies_and_prints_until_ctrl_c(
    tmp_path: Path, ls: LabelStudio, client: LabelStudioClient, env: dict[str, str]
) -> None:
    # Given a linked, pushed stage and `annoflow labelstudio serve` on a free port, hooked through the CLI
    store, pid = labelled_store(tmp_path, ls, "served", ["s1"])
    push(store, client, link(store, client, "served", "Annotate 1"), str(ls.files_root))
    port = free_port()
    proc = subprocess.Popen(
        [str(ANNOFLOW), "labelstudio", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait("serve did not answer /health", lambda: _healthy(port))
        _hook("served", f"http://127.0.0.1:{port}/webhook")

        # When s1 is annotated in Label Studio
        (task,) = client.tasks(get_link(store, "served", "Annotate 1").ls_project)
        annotate(ls, task["id"], [box("pear")])

        # Then the task moves to review
        s1 = next(t.uuid for t in store.iter_tasks(pid, None, {}) if t.data_title == "s1")
        wf = store.workflow(pid)
        _wait("s1 did not reach Review 1", lambda: wf.stages[store.get_task(s1).stage_uuid].title == "Review 1")
    finally:
        # When Ctrl-C stops the server
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        store.close()

    # Then it exits cleanly, having printed where it listens and one line for the applied annotation
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"http://127.0.0.1:{port}/webhook" in text
    assert text.count("applied") == 1 and f"{s1}: submit by {ls.email}" in text.replace("\n", "")


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
