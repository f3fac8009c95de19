"""Find the local servers tests need; skip loudly without them, fail in CI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import httpx
import pytest
import sqlalchemy as sa

REDIS_URL = os.environ.get("ANNOFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES_URL = os.environ.get("ANNOFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(proc: subprocess.Popen[bytes], url: str, timeout_s: float, what: str, hint: str = "") -> None:
    """Wait until GET ``url`` answers 200; fail the test if ``proc`` exits or ``timeout_s`` passes first.

    The failure says ``hint`` (where the server's log is), or else the end of the process's stderr.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            if not hint and proc.stderr is not None:
                hint = proc.stderr.read().decode()[-2000:]
            pytest.fail(f"{what} did not start: {hint}", pytrace=False)
        time.sleep(0.2)


def missing(reason: str) -> NoReturn:
    """Skip the test for ``reason`` (loudly); with CI=true fail it instead: CI must have every part."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {reason}")


def require(name: str, host: str, port: int) -> None:
    """Skip the test when the server is missing; in CI (CI=true) fail instead."""
    if _reachable(host, port):
        return
    missing(f"{name} is not running on {host}:{port}; start it to run this test")


def require_redis() -> None:
    require("Redis", "127.0.0.1", 6379)


def require_postgres() -> None:
    require("PostgreSQL", "127.0.0.1", 5432)


def require_rabbitmq() -> None:
    require("RabbitMQ", "127.0.0.1", 5672)


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (skipped or failed without the server), dropped after."""
    require_postgres()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def chromium() -> str:
    """The Chromium binary for headless browser tests; skip loudly without one, fail in CI (.ci/run installs it)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    missing("headless Chromium is not installed; 'apt-get install -y chromium' to run this test")
