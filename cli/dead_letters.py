"""``annoflow dead-letters``: look at, send again or drop the results messages the applier could not use."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cli.app import console, group, settings
from common.celery_app import PipelineSettings, broker_url, transport_options
from common.errors import InvalidInputError
from producer.apply.dead_letters import peek, purge, requeue, summary

dead_app = group(
    "dead-letters", "Results messages the applier could not use: list them, send them again, or drop them."
)

LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="At most this many, oldest first (default: all)")]


def _broker() -> tuple[str, dict[str, object]]:
    s = settings()
    return broker_url(s), transport_options(s, PipelineSettings())


@dead_app.command("list")
def dead_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the oldest this many")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, with each message's whole body")] = False,
) -> None:
    """Show the oldest dead letters, with the reason each was rejected (none is taken off the queue)."""
    found = peek(*_broker(), limit)
    if as_json:
        rows = [summary(letter) | {"body": letter.body} for letter in found.letters]
        typer.echo(json.dumps({"total": found.total, "letters": rows}, indent=2))
        return
    if not found.total:
        console.print("no dead letters: the applier has rejected no message")
        return
    table = Table(title=f"dead letters: the oldest {len(found.letters)} of {found.total}")
    for col in ("at", "applier", "batch", "bytes", "reason"):
        table.add_column(col)
    for letter in found.letters:
        row = summary(letter)
        reason = row["reason"].splitlines()[0] if row["reason"] else ""
        table.add_row(row["at"], row["applier"], str(row["batch_id"] or "-"), str(row["body_bytes"]), reason[:200])
    console.print(table)
    console.print(
        "whole messages: 'annoflow dead-letters list --json'; once the cause is fixed, "
        "'annoflow dead-letters requeue' sends them to the applier again"
    )


@dead_app.command("requeue")
def dead_requeue(limit: LimitOpt = None) -> None:
    """Send dead letters' messages to the results queue again (after fixing what rejected them)."""
    n = requeue(*_broker(), limit)
    console.print(f"sent {n} message(s) back to the results queue; any the applier still rejects come back here")


@dead_app.command("purge")
def dead_purge(
    limit: LimitOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the messages are gone for good")] = False,
) -> None:
    """Drop dead letters for good, oldest first."""
    if not yes:
        raise InvalidInputError(
            "purging cannot be undone; add --yes (list them first with 'annoflow dead-letters list')"
        )
    n = purge(*_broker(), limit)
    console.print(f"dropped {n} dead letter(s)")
