"""A real Label Studio on loopback for one test session, started from the prepared data dir.

``make labelstudio-server`` builds ``.venv-labelstudio`` and its migrated template; without it the
tests skip with the reason, and with CI=true they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port, missing, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
LS_BIN = ROOT / ".venv-labelstudio" / "bin" / "label-studio"
TEMPLATE = ROOT / ".venv-labelstudio" / "template"


@dataclass(frozen=True)
class LabelStudio:
    url: str
    token: str = field(repr=False)  # never in a failing test's output
    email: str
    password: str = field(repr=False)  # the admin's, for the browser test's login
    files_root: Path  # served as local-files storage


def start(tmp: Path) -> Iterator[LabelStudio]:
    if not (LS_BIN.exists() and (TEMPLATE / "annoflow-test.json").exists()):
        missing(f"Label Studio is not prepared ({LS_BIN} or {TEMPLATE}); run make labelstudio-server")
    data, files = tmp / "ls-data", tmp / "ls-files"
    shutil.copytree(TEMPLATE, data)
    files.mkdir()
    info = json.loads((data / "annoflow-test.json").read_text(encoding="utf-8"))
    port = free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files),
        # Webhooks to the test's annoflow server on 127.0.0.1: Label Studio's SSRF protection refuses
        # loopback and private addresses, both when the webhook is created and when it is sent.
        "SSRF_PROTECTION_ENABLED": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    log = (tmp / "ls.log").open("wb")
    proc = subprocess.Popen(
        [str(LS_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(port)],
        cwd=tmp,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{url}/health", 90, "Label Studio", f"see {tmp / 'ls.log'}")
        yield LabelStudio(url, info["token"], info["email"], info["password"], files)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
