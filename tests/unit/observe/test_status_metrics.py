"""The /metrics registry built from a status snapshot, the applier's counters and the producer's observations."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from common.store import Store
from common.store.apply import ApplyOutcome
from common.workflow import load_workflow
from producer.apply.stats import MemoryApplyStats
from producer.observe.metrics import PipelineMetrics
from tests.helpers import make_units

FIXTURES = Path(__file__).parents[2] / "fixtures"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class FakeReader:
    def depths(self) -> dict[str, int]:
        return {"annoflow.pipe.sort": 5}

    def unacked(self) -> int:
        return 2


def samples(metrics: PipelineMetrics) -> Samples:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_registry_reports_store_broker_applier_and_producer_numbers(store: Store) -> None:
    # Given a project of 3 tasks, a broker with a backlog, an applier that handled two messages
    project = store.create_project("pipe", load_workflow(FIXTURES / "queue_pipeline.yaml"))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units(["a", "b", "c"]))
    stats = MemoryApplyStats()
    stats.applied(ApplyOutcome(applied=3, stale=1), 0.02)
    stats.applied(ApplyOutcome(failed=1, retried=2), 3.0)
    stats.dead_letter()
    metrics = PipelineMetrics(store, FakeReader(), stats)

    # When the producer published a fill and the registry is scraped
    metrics.enumerated("pipe", "Sort", 3, 0.004)
    got = samples(metrics)

    # Then every family carries the numbers
    assert got[("annoflow_store_up", ())] == 1 and got[("annoflow_broker_up", ())] == 1
    assert got[("annoflow_queue_depth", (("queue", "annoflow.pipe.sort"),))] == 5
    assert got[("annoflow_queue_unacked", ())] == 2
    assert got[("annoflow_tasks", (("project", "pipe"), ("stage", "Sort"), ("status", "NEW")))] == 3
    assert got[("annoflow_live_leases", (("project", "pipe"), ("stage", "Sort")))] == 0
    for outcome, n in {"applied": 3, "stale": 1, "retried": 2, "failed": 1}.items():
        assert got[("annoflow_results_total", (("outcome", outcome),))] == n
    assert got[("annoflow_result_messages_total", ())] == 3
    assert got[("annoflow_dead_letters_total", ())] == 1
    assert got[("annoflow_apply_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("annoflow_apply_seconds_bucket", (("le", "2.5"),))] == 1
    assert got[("annoflow_apply_seconds_bucket", (("le", "5.0"),))] == 2
    assert got[("annoflow_apply_seconds_count", ())] == 2
    assert got[("annoflow_apply_seconds_sum", ())] == 3.02
    stage = (("project", "pipe"), ("stage", "Sort"))
    assert got[("annoflow_tasks_published_total", stage)] == 3
    assert got[("annoflow_enumerate_seconds_bucket", (("le", "0.005"), *stage))] == 1


def test_an_unreadable_store_is_a_number_not_a_failed_scrape() -> None:
    # Given a store that cannot be read
    class Broken:
        def list_projects(self) -> None:
            raise ConnectionError("store went away")

    metrics = PipelineMetrics(Broken(), FakeReader(), None)  # type: ignore[arg-type]

    # When scraped, Then the scrape answers and says the store is down
    got = samples(metrics)
    assert got[("annoflow_store_up", ())] == 0
    assert ("annoflow_queue_depth", (("queue", "annoflow.pipe.sort"),)) not in got
