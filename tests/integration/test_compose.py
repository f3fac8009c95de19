"""docker-compose.yml run as local processes: each annoflow service's own command and environment.

No Docker engine runs here, so the stack is replayed: the Dockerfile's ENV,
ENTRYPOINT and WORKDIR plus each service's environment, entrypoint and command,
with the compose hosts ``redis`` and ``postgres`` mapped to the local servers
(Redis database 13, a PostgreSQL database of the test's own; the local servers
need no password) and each service's bind mounts mapped to folders of the test.
If a service's command, environment or mounts are wrong, its process fails and
so does this test. Services start in compose's order: migrate runs to
completion, then producer, applier and the workers; then a pre-annotation
(ToTask inference) job runs through the inference worker, started the way
``docker compose run --rm producer totask run ...`` would.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
import redis
import sqlalchemy as sa
import yaml
from prometheus_client.parser import text_string_to_metric_families

from common.enums import Role
from common.store import Store
from common.store.records import DataFile, DataUnit
from common.workflow import load_workflow
from tests.helpers import make_units
from tests.integration.compose_env import (
    ENV_EXAMPLE,
    Image,
    Process,
    load_compose,
    read_dockerfile,
    read_env_file,
    rewrite_url,
    service_process,
    volume_map,
)
from tests.integration.pipeline_env import WORKFLOW, kill_group, wait_until
from tests.servers import POSTGRES_URL, require_postgres, require_redis

pytestmark = pytest.mark.integration

REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VENV_BIN = str(Path(sys.executable).parent)
AGENT_MODULE = """
from common.runner import QueueRunner

runner = QueueRunner(project="composed")


@runner.stage("Sort")
def sort() -> str:
    return "done"
"""


@dataclass
class Stack:
    """The test's .env, the interpolated compose file, the image, and the processes started."""

    tmp: Path
    database: str
    env: dict[str, str]
    compose: dict[str, Any]
    image: Image
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def store_url(self) -> str:
        return POSTGRES_URL.rsplit("/", 1)[0] + f"/{self.database}"

    def localise(self, service: str) -> Any:
        """Map compose hosts to the local servers and the service's container paths to the test's folders."""
        paths = {
            **volume_map(self.compose["services"][service]),
            "/home/annoflow": str(self.tmp / f"home-{service}"),
            "/opt/annoflow/bin": VENV_BIN,
        }

        def local(value: str) -> str:
            value = rewrite_url(value, REDIS_URL, self.store_url)
            for inside, outside in sorted(paths.items(), key=lambda kv: -len(kv[0])):
                pattern = rf"(^|[:=]){re.escape(inside)}(?=/|:|$)"
                value = re.sub(pattern, lambda m, to=outside: m.group(1) + to, value)
            return value

        return local

    def process(self, service: str, command: list[str] | None = None) -> Process:
        proc = service_process(self.compose, self.image, service, self.localise(service), command)
        proc.cwd.mkdir(parents=True, exist_ok=True)
        # Only what the container would have: the image's and the service's variables.
        proc.env["HOME"] = str(proc.cwd)
        proc.env["PATH"] = proc.env.get("PATH", "").rstrip(":") + ":/usr/bin:/bin"
        found = shutil.which(proc.argv[0], path=proc.env["PATH"])
        assert found, f"{service}: entrypoint {proc.argv[0]!r} is not on the image's PATH {proc.env['PATH']}"
        proc.argv[0] = found
        return proc

    def start(self, service: str) -> subprocess.Popen[bytes]:
        p = self.process(service)
        log = open(self.tmp / f"{service}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            p.argv, cwd=p.cwd, env=p.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def run(
        self, service: str, command: list[str] | None = None, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        p = self.process(service, command)
        return subprocess.run(p.argv, cwd=p.cwd, env=p.env, capture_output=True, text=True, timeout=timeout)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in self.tmp.glob("*.log"))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    require_redis()
    require_postgres()
    client = redis.Redis(db=REDIS_DB)
    client.flushdb()
    database = f"annoflow_compose_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    for folder in ("agents", "runs", "data"):
        (tmp_path / folder).mkdir()
    env = {
        **read_env_file(ENV_EXAMPLE),
        "POSTGRES_DB": database,
        "ANNOFLOW_PROJECT": "composed",
        "ANNOFLOW_AGENTS": "compose_agents:runner",
        "ANNOFLOW_AGENTS_DIR": str(tmp_path / "agents"),
        "ANNOFLOW_RUNS_DIR": str(tmp_path / "runs"),
        "ANNOFLOW_DATA_DIR": str(tmp_path / "data"),
        "ANNOFLOW_REFRESH_EVERY": "1",
        "ANNOFLOW_TASK_BATCH_SIZE": "4",
        "ANNOFLOW_WORKER_CONCURRENCY": "1",
        "ANNOFLOW_SOFT_TIME_LIMIT": "20",
        "ANNOFLOW_HARD_TIME_LIMIT": "30",
        "ANNOFLOW_VISIBILITY_TIMEOUT": "60",
    }
    s = Stack(tmp_path, database, env, load_compose(env), read_dockerfile())
    try:
        yield s
    finally:
        for proc in s.procs:
            kill_group(proc)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        client.flushdb()


def seed(stack: Stack) -> tuple[Store, str]:
    """The agent project the producer feeds, and a project of one photo to pre-label; returns the photo's hash."""
    (stack.tmp / "agents" / "compose_agents.py").write_text(AGENT_MODULE)
    from skimage import data as samples

    photo = stack.tmp / "data" / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(samples.astronaut(), cv2.COLOR_RGB2BGR))
    store = Store.open(stack.store_url, upgrade=False)
    agents = store.create_project("composed", load_workflow(WORKFLOW))
    store.add_data_units(agents.id, store.dataset(agents.id, "items"), make_units([f"item-{i}" for i in range(10)]))
    prelabel = store.create_project("faces", load_workflow(FIXTURES / "apples.yaml"))
    unit = DataUnit(
        data_hash=str(uuid.uuid4()),
        title="astronaut.png",
        files={"image": DataFile(url=photo.as_uri(), original_name="astronaut.png", is_primary=True)},
    )
    store.add_data_units(prelabel.id, store.dataset(prelabel.id, "photos"), [unit])
    store.add_user("prelabel-bot@acme.com")
    store.set_role(prelabel.id, "prelabel-bot@acme.com", Role.ANNOTATOR)
    return store, unit.data_hash


def test_compose_services_run_an_agent_job_and_a_prelabel_job(stack: Stack) -> None:
    # Given the compose file's one-shot migrate service, run to completion against a fresh database
    migrated = stack.run("migrate", timeout=60)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    store, photo_hash = seed(stack)

    # When producer, applier and every worker service start with their own commands and environment
    for service in ("producer", "applier", "worker", "totask-worker", "inference-worker"):
        stack.start(service)
    composed = store.get_project("composed")
    wf = store.workflow(composed.id)

    def completed() -> bool:
        # A service that exits (a wrong command, variable or mount) fails the test at once.
        for proc in stack.procs:
            assert proc.poll() is None, f"{proc.args[1:3]} exited with {proc.returncode}; logs:\n{stack.logs()}"
        return sum(store.counts(composed.id).get(wf.stage("Complete").uuid, {}).values()) == 10

    # Then the agent job goes through them: every task reaches Complete
    wait_until(completed, 60, f"10 tasks in Complete; logs:\n{stack.logs()}")

    # And a pre-annotation job started as `docker compose run --rm producer totask run ...` uses the inference worker
    params = {
        "name": "Compose_Faces",
        "project": "faces",
        "agent": "prelabel-bot@acme.com",
        "method": "inference",
        "pre_processor": "haar-face",
        "batch_size": 1,
    }
    (stack.tmp / "runs" / "faces.yaml").write_text(yaml.safe_dump(params))
    command = ["totask", "run", "/opt/annoflow-runs/faces.yaml", "--workers", "0", "--json"]
    ran = stack.run("producer", command, timeout=90)
    assert ran.returncode == 0, ran.stdout + ran.stderr + stack.logs()
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["status"] == "SUCCEEDED"
    assert result["metrics"]["success"] == 1
    objects = store.get_label_row(store.get_project("faces").id, photo_hash).objects
    assert objects, "the face detector wrote no object to the label row"

    # And the producer's /metrics (port 9464 in the container) counts the finished tasks
    text = httpx.get("http://127.0.0.1:9464/metrics", timeout=5).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("annoflow_tasks", (("project", "composed"), ("stage", "Complete"), ("status", "COMPLETED")))] == 10

    # And each service's health check (its own, or the image's) passes with its own environment
    checks = {}
    for service in ("producer", "applier", "worker", "inference-worker"):
        check = stack.compose["services"][service].get("healthcheck", {}).get("test")
        check = check or ["CMD", *stack.image.healthcheck]
        assert check[:2] == ["CMD", "annoflow"], f"{service}: health check {check} should be exec-form 'annoflow ...'"
        checks[service] = stack.process(service, check[2:])  # the entrypoint is 'annoflow'
    running = {
        name: subprocess.Popen(p.argv, cwd=p.cwd, env=p.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for name, p in checks.items()
    }
    for name, proc in running.items():
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, f"{name} unhealthy: {out.decode(errors='replace')}"
    store.close()
    for proc in stack.procs:
        assert proc.poll() is None, f"a service exited early; logs:\n{stack.logs()}"
