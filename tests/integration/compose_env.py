"""Read docker-compose.yml and the Dockerfile the way Docker would, to run a service as a local process.

Compose's variable interpolation (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?error}``, ``${VAR?error}``, ``$$``) is applied to the file first; then a
service's process is: the image's ``ENV`` (final Dockerfile stage), the service's
``environment``, its ``entrypoint`` (or the image's) followed by its ``command``,
in the image's ``WORKDIR``. :func:`localise` maps what only exists inside the
stack to this machine: the ``redis`` and ``postgres`` hosts, and container paths
that a volume mounts.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution.

    Raises:
        ValueError: a ``${VAR:?msg}`` / ``${VAR?msg}`` variable is missing (compose refuses to start).
    """

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        value = env.get(name)
        # The colon forms treat an empty value as missing, as compose does.
        missing = not value if op in (":-", ":?") else value is None
        if not missing:
            return value or ""
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise ValueError(f"compose would refuse to start: {name}: {arg}")
        return ""

    return _VAR.sub(sub, text)


def load_compose(env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml with ``env`` interpolated (anchors and merge keys resolved by YAML)."""
    data: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE.read_text(), env))
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@dataclass
class Image:
    """What the final Dockerfile stage sets for every container."""

    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    workdir: str = "/"
    user: str = "root"
    healthcheck: list[str] = field(default_factory=list)
    stages: int = 0


def read_dockerfile(path: Path = DOCKERFILE) -> Image:
    """ENV, ENTRYPOINT, WORKDIR, USER and HEALTHCHECK of the last stage (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    image = Image()
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            image = Image(stages=image.stages + 1)
        elif word == "ENV":
            for part in shlex.split(rest):
                key, _, value = part.partition("=")
                # ENV may refer to earlier values ($PATH): the image's own, or empty.
                known = dict(image.env)
                image.env[key] = re.sub(r"\$(\w+)", lambda m, known=known: known.get(m.group(1), ""), value)
        elif word == "ENTRYPOINT":
            image.entrypoint = json.loads(rest)
        elif word == "WORKDIR":
            image.workdir = rest.strip()
        elif word == "USER":
            image.user = rest.strip()
        elif word == "HEALTHCHECK":
            image.healthcheck = json.loads(rest[rest.index("CMD") + 3 :].strip())
    return image


@dataclass
class Process:
    """A service as a local process: argv, environment, working folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


def service_process(
    compose: dict[str, Any], image: Image, name: str, localise: Callable[[str], str], command: list[str] | None = None
) -> Process:
    """The process Docker would start for service ``name`` (``command`` overrides it, like ``compose run``)."""
    service = compose["services"][name]
    env = {**image.env, **{k: str(v) for k, v in (service.get("environment") or {}).items()}}
    entrypoint = service.get("entrypoint", image.entrypoint)
    entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint)
    cmd = command if command is not None else service.get("command", [])
    cmd = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    return Process(
        argv=[localise(a) for a in [*entrypoint, *cmd]],
        env={k: localise(v) for k, v in env.items()},
        cwd=Path(localise(image.workdir)),
    )


def volume_map(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts (named volumes skipped)."""
    out = {}
    for spec in service.get("volumes") or []:
        source, target = str(spec).split(":")[:2]
        if source.startswith((".", "/")):
            out[target] = str((ROOT / source).resolve()) if source.startswith(".") else source
    return out


def rewrite_url(value: str, redis_url: str, postgres_url: str) -> str:
    """Point URLs at the compose hosts ``redis`` and ``postgres`` to this machine's servers."""
    if "://" not in value:
        return value
    host = urlsplit(value).hostname
    if host == "redis":
        return redis_url
    if host == "postgres":
        return postgres_url
    return value
