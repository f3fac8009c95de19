"""The benchmark's handler: a no-op, so ``annoflow bench pipeline`` measures the pipeline itself."""

from __future__ import annotations

from common.runner import QueueRunner

runner = QueueRunner(project="bench")


@runner.stage("Noop")
def noop() -> str:
    return "done"
