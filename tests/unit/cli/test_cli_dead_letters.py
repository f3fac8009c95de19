"""``annoflow dead-letters`` on the embedded broker (no servers): list, list --json, purge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kombu.connection import Connection
from typer.testing import CliRunner, Result

from cli import app as cli
from cli import main as cli_main
from common.celery_app import DEAD_LETTER_QUEUE, PipelineSettings, broker_transport, make_queue, transport_options
from common.settings import Settings
from producer.apply.dead_letters import DeadLetter


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The embedded broker under tmp_path; settings re-read for this test."""
    monkeypatch.delenv("ANNOFLOW_BROKER_URL", raising=False)
    monkeypatch.setenv("ANNOFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    cli.settings.cache_clear()
    cli_main.register()
    yield tmp_path / "home"
    cli.settings.cache_clear()


def _run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli.app, ["dead-letters", *args])
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
    return result


def _keep(home: Path, reason: str, body: str) -> None:
    """Put a dead letter on the embedded broker's queue, as the applier does."""
    settings = Settings(home=home)
    url = "filesystem://localhost/"
    options = transport_options(settings, PipelineSettings())
    letter = DeadLetter(reason=reason, body=body, at=datetime.now(UTC), applier="applier-1")
    with Connection(url, transport=broker_transport(url), transport_options=options) as conn:
        queue = make_queue(DEAD_LETTER_QUEUE)
        conn.Producer().publish(
            letter.model_dump(mode="json"), exchange="", routing_key=DEAD_LETTER_QUEUE, declare=[queue]
        )


def test_listing_and_purging_dead_letters(home: Path) -> None:
    # Given no dead letters, then two
    assert "no dead letters" in _run("list").stdout
    batch = json.dumps({"header": {"batch_id": "b-7"}, "results": "x" * 5000})
    _keep(home, "not a valid results message: 1 validation error", batch)
    _keep(home, "not a valid results message: invalid JSON", "{not json")

    # When they are listed
    table = _run("list").stdout
    listed = json.loads(_run("list", "--json").stdout)

    # Then the table shows each reason and batch, and the JSON the whole messages, oldest first
    assert "the oldest 2 of 2" in table and "b-7" in table and "invalid JSON" in table
    assert listed["total"] == 2 and [row["body"] for row in listed["letters"]] == [batch, "{not json"]
    assert listed["letters"][0]["batch_id"] == "b-7" and listed["letters"][0]["applier"] == "applier-1"

    # When a purge is asked for without --yes, then nothing is dropped and the error says how
    refused = _run("purge", code=2)
    assert "add --yes" in refused.stderr and json.loads(_run("list", "--json").stdout)["total"] == 2

    # When the oldest is purged, then only the other is left
    assert "dropped 1" in _run("purge", "--limit", "1", "--yes").stdout
    assert [row["body"] for row in json.loads(_run("list", "--json").stdout)["letters"]] == ["{not json"]


@pytest.mark.parametrize("command", [["list"], ["requeue"], ["purge", "--yes"]])
def test_an_unreachable_broker_is_one_line_that_says_where(
    home: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # Given a broker URL where nothing listens (with a password in it)
    monkeypatch.setenv("ANNOFLOW_BROKER_URL", "redis://user:s3cret@127.0.0.1:1/0")
    cli.settings.cache_clear()

    # When a dead-letters command runs
    result = _run(*command, code=1)

    # Then it says which broker did not answer, without the password or a traceback
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: broker unreachable at redis://user:**@127.0.0.1:1/0")
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_health_names_an_unreachable_broker_the_same_way(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the same unreachable broker
    monkeypatch.setenv("ANNOFLOW_BROKER_URL", "redis://user:s3cret@127.0.0.1:1/0")
    cli.settings.cache_clear()

    # When the container health check runs (without the store)
    result = CliRunner().invoke(cli.app, ["health", "--no-store", "--timeout", "1"])

    # Then it fails with the one line the other commands give, password hidden
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: broker unreachable at redis://user:**@127.0.0.1:1/0")
    assert "s3cret" not in result.output
