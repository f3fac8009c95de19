"""docker-compose.yml, .env.example and the Dockerfile say what the deployment promises.

``docker-compose config`` (Debian's docker-compose package; .ci/run installs it)
validates the file; the other checks read it the way compose does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.compose_env import (
    COMPOSE,
    DOCKERFILE,
    ENV_EXAMPLE,
    interpolate,
    load_compose,
    read_dockerfile,
    read_env_file,
)
from tests.servers import missing

pytestmark = pytest.mark.integration

ANNOFLOW_SERVICES = {"migrate", "producer", "applier", "worker", "totask-worker", "inference-worker"}


@pytest.fixture
def compose() -> dict[str, Any]:
    return load_compose(read_env_file(ENV_EXAMPLE))


def require_docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found:
        return found
    missing("docker-compose is not installed (apt-get install -y docker-compose); .ci/run installs it")


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    # Given docker-compose and the example settings as .env
    binary = require_docker_compose()
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")

    # When it validates and resolves the file
    done = subprocess.run([binary, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    # Then it is valid, and resolves to every service of the stack
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) == ANNOFLOW_SERVICES | {"redis", "postgres", "flower"}


def test_docker_compose_config_refuses_missing_passwords(tmp_path: Path) -> None:
    # Given a .env without the Redis password
    binary = require_docker_compose()
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    lines = [x for x in ENV_EXAMPLE.read_text().splitlines() if not x.startswith("REDIS_PASSWORD=")]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")

    # When compose resolves the file, Then it refuses and says which variable to set
    done = subprocess.run([binary, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "set REDIS_PASSWORD in .env" in done.stderr


def test_every_variable_is_documented_in_env_example() -> None:
    # Given the variables the compose file uses, and .env.example
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    lines = ENV_EXAMPLE.read_text().splitlines()

    # Then each is listed once, right below a comment saying what it means
    listed = {line.split("=", 1)[0]: i for i, line in enumerate(lines) if re.match(r"^[A-Z_]+=", line)}
    assert used == set(listed)
    for name, i in listed.items():
        assert lines[i - 1].startswith("# "), f"{name} has no comment saying what it means"


def test_servers_are_pinned_persistent_and_checked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    redis, postgres = services["redis"], services["postgres"]
    # Redis: pinned, append-only, never evicts queued messages, password from the environment
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+[-\w]*", redis["image"])
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert f"--requirepass {read_env_file(ENV_EXAMPLE)['REDIS_PASSWORD']}" in command
    assert "${REDIS_PASSWORD" in COMPOSE.read_text().split("redis-server")[1].split("volumes")[0]
    # PostgreSQL: pinned, a named volume, a health check
    assert re.fullmatch(r"postgres:\d+\.\d+[-\w]*", postgres["image"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    for server in (redis, postgres):
        assert server["healthcheck"]["test"]


def test_services_start_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    # migrate waits for a healthy PostgreSQL; the store users wait for migrate to finish
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("producer", "applier"):
        deps = services[name]["depends_on"]
        assert deps["migrate"] == {"condition": "service_completed_successfully"}
        assert deps["redis"] == {"condition": "service_healthy"}
    for name in ("worker", "totask-worker", "inference-worker", "flower"):
        assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_workers_scale_and_hold_no_store_credentials(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("worker", "totask-worker", "inference-worker"):
        service = services[name]
        # Scalable: no fixed name, no host port; no store credentials; a health check without the store
        assert "container_name" not in service and "ports" not in service
        assert "ANNOFLOW_STORE_URL" not in service["environment"]
        assert service["healthcheck"]["test"] == ["CMD", "annoflow", "health", "--no-store"]
    assert services["worker"]["command"][:2] == ["worker", "--agents"]
    # The inference worker consumes the inference queue only, and shows how to reserve a GPU
    assert services["inference-worker"]["command"][:4] == ["totask", "worker", "--methods", "inference"]
    block = COMPOSE.read_text().split("  inference-worker:")[1].split("\n  flower:")[0]
    assert "#         - driver: nvidia" in block and "#           capabilities: [gpu]" in block


def test_flower_uses_basic_auth_from_the_environment(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    example = read_env_file(ENV_EXAMPLE)
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == f"{example['FLOWER_USER']}:{example['FLOWER_PASSWORD']}"
    assert flower["environment"]["FLOWER_PORT"] == "5555"
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert flower["entrypoint"] == ["celery"] and flower["command"] == ["flower"]
    with pytest.raises(ValueError, match="set FLOWER_PASSWORD"):
        interpolate(COMPOSE.read_text(), {k: v for k, v in example.items() if k != "FLOWER_PASSWORD"})


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    image = read_dockerfile()
    text = DOCKERFILE.read_text()
    assert image.stages == 2
    assert image.user not in ("", "root", "0")
    assert image.healthcheck == ["annoflow", "health"]
    assert image.entrypoint == ["annoflow"]
    assert '".[flower]"' in text
    # The runtime stage starts from a slim base and copies only the built environment
    final = text.split("\nFROM ")[-1]
    assert final.startswith("python:3.11") and "-slim" in final.splitlines()[0]
    assert "COPY --from=build" in final
