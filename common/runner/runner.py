"""The sequential Runner: the same stage handlers, run in one process against the store.

For debugging and small projects. It claims, builds specs, runs handlers and
applies results with the same functions as the distributed pipeline
(:func:`claim_tasks`, :func:`build_specs`, :func:`apply_results`), so a
handler behaves the same in both. Stages are drained in registration order::

    runner = Runner(project="apples")

    @runner.stage("Pre-label")
    def pre_label(label_row: LabelRowEditor) -> str:
        label_row.add({"name": "apple"})
        return "labelled"

    if __name__ == "__main__":
        runner.run()  # python my_agent.py --project apples --num-retries 1
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC

import typer
from rich.console import Console
from rich.table import Table

from common.runner.base import RunnerBase
from common.runner.handlers import StageAgent
from common.settings import Settings
from common.store.apply import apply_results
from common.store.leases import next_retry_at
from common.store.lifecycle import now
from common.store.store import Store

__all__ = ["Runner", "StageStats"]


@dataclass
class StageStats:
    """What one stage's handler did during a runner call."""

    stage: str
    processed: int = 0
    applied: int = 0
    retried: int = 0
    failed: int = 0
    stale: int = 0
    errors: list[str] = field(default_factory=list)


class Runner(RunnerBase):
    """Run stage handlers sequentially in this process; see the module docstring."""

    def __call__(
        self,
        project: str | None = None,
        *,
        refresh_every: float | None = None,
        num_retries: int = 3,
        task_batch_size: int = 300,
        max_tasks_per_stage: int | None = None,
        retry_backoff: float = 1.0,
        lease_seconds: float = 600.0,
        settings: Settings | None = None,
    ) -> dict[str, StageStats]:
        """Drain every registered stage in order; with ``refresh_every``, poll again forever.

        Args:
            project: the project, if not given to the runner.
            refresh_every: seconds between passes; None: one pass, then return.
            num_retries: how many times a failed task is tried again.
            task_batch_size: tasks claimed (and labels loaded) at once.
            max_tasks_per_stage: the most tasks each stage handles per pass.
            retry_backoff: the first retry of a failed task waits this long (doubling).
            lease_seconds: how long a claimed batch may take before others may take it.
            settings: where the store is, when no store was given (read from
                ANNOFLOW_* variables otherwise).

        Returns:
            Per stage title, what was done (the last pass when polling).

        Raises:
            InvalidInputError: no project, or a handler's stage is not an agent stage.
            NotFoundError: the project does not exist.
        """
        if project is not None and project != self.project:
            self.project, self._project_record = project, None
        if self.store is None:
            self.store = Store.open((settings or Settings()).resolved_store_url)
        self._project_in_store()
        while True:
            began = time.monotonic()
            stats = {
                a.stage_title or a.stage_key: self._drain(
                    a, num_retries, task_batch_size, max_tasks_per_stage, retry_backoff, lease_seconds
                )
                for a in self.agents
            }
            if refresh_every is None:
                return stats
            # Poll again refresh_every after the pass began, or at once if it took longer.
            time.sleep(max(0.0, began + refresh_every - time.monotonic()))

    def _drain(
        self, agent: StageAgent, num_retries: int, batch: int, most: int | None, backoff: float, lease: float
    ) -> StageStats:
        store, project = self._project_in_store()
        assert agent.stage_uuid is not None
        stats = StageStats(agent.stage_title or agent.stage_key)
        started = now()  # one pass: a task that stays is not taken again until the next
        while most is None or stats.processed < most:
            left = None if most is None else most - stats.processed
            claims = self.claim_specs(agent, batch_size=batch, limit=left, lease_seconds=lease, pass_started=started)
            for specs in claims:
                outcome = apply_results(store, agent.run_specs(specs), num_retries=num_retries, backoff_s=backoff)
                stats.processed += len(specs)
                stats.applied += outcome.applied
                stats.retried += outcome.retried
                stats.failed += outcome.failed
                stats.stale += outcome.stale
                stats.errors.extend(n.detail for n in outcome.notes if n.outcome in ("retried", "failed"))
            retry_at = next_retry_at(store, project.id, agent.stage_uuid)
            if retry_at is None:
                break
            # Failed tasks are retried within the pass, once their backoff has passed.
            retry_at = retry_at if retry_at.tzinfo else retry_at.replace(tzinfo=UTC)
            time.sleep(max(0.0, (retry_at - now()).total_seconds()) + 0.01)
        return stats

    # ------------------------------------------------------------------ CLI
    def cli(self) -> typer.Typer:
        """The runner as a command line (what :meth:`run` executes)."""
        app = typer.Typer(add_completion=False, help="Run this file's stage handlers on a project's tasks.")

        @app.command()
        def main(
            project: str | None = typer.Option(self.project, help="The project's name or id."),
            refresh_every: float | None = typer.Option(
                None, help="Poll the stages again every this many seconds; unset: exit once they are drained."
            ),
            num_retries: int = typer.Option(3, help="How many times a failed task is tried again."),
            task_batch_size: int = typer.Option(300, help="Tasks claimed and loaded at once."),
            max_tasks_per_stage: int | None = typer.Option(None, help="The most tasks each stage handles per pass."),
        ) -> None:
            """Drain the registered agent stages in order."""
            stats = self(
                project,
                refresh_every=refresh_every,
                num_retries=num_retries,
                task_batch_size=task_batch_size,
                max_tasks_per_stage=max_tasks_per_stage,
            )
            _render(stats)

        return app

    def run(self) -> None:
        """Parse the command line and run (``python my_agent.py --project apples``)."""
        self.cli()()


def _render(stats: dict[str, StageStats]) -> None:
    table = Table("stage", "processed", "applied", "retried", "failed", "stale", title="annoflow runner")
    for s in stats.values():
        table.add_row(s.stage, *(str(n) for n in (s.processed, s.applied, s.retried, s.failed, s.stale)))
    console = Console()
    console.print(table)
    for s in stats.values():
        for error in s.errors[:5]:
            console.print(f"[red]{s.stage}[/red]: {error.splitlines()[0]}")
