"""Dependency injection for stage handlers: Depends, Annotated, caching, cleanup, assets."""

from __future__ import annotations

import functools
import http.server
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pytest

from common.errors import InvalidInputError
from common.models import LabelPayload, TaskCompletionResult, TaskSpec
from common.runner import Depends, LabelRowEditor, ProjectInfo, QueueRunner, StageInfo, dep_asset
from common.store.records import DataFile, DataUnit

STAGE = uuid.UUID(int=1)
PATHWAYS = {"labelled": uuid.UUID(int=2), "skip": uuid.UUID(int=3)}


def make_spec(title: str = "a.jpg", url: str = "file:///nowhere/a.jpg", labels: LabelPayload | None = None) -> TaskSpec:
    at = datetime.now(UTC)
    return TaskSpec(
        uuid=uuid.uuid4(), data_hash=uuid.uuid4(), data_title=title, status="NEW", created_at=at, updated_at=at,
        project_uuid="p1", project_name="apples", stage_uuid=STAGE, stage_title="Pre-label", pathways=PATHWAYS,
        lease_token="L1:1", files={"image": DataFile(url=url, original_name=title, is_primary=True)}, labels=labels,
    )  # fmt: skip


def run(agent: object, *specs: TaskSpec) -> list[TaskCompletionResult]:
    out = agent([s.model_dump_json() for s in specs])  # type: ignore[operator]
    return [TaskCompletionResult.model_validate_json(r) for r in out]


# Dependency functions live at module level so their annotations resolve.
CALLS: list[str] = []


def dep_title(unit: DataUnit) -> str:
    CALLS.append("title")
    return unit.title


def dep_shout(title: Annotated[str, Depends(dep_title)]) -> Iterator[str]:
    CALLS.append("open")
    try:
        yield title.upper()
    finally:
        CALLS.append("close")


def test_dependencies_resolve_recursively_cached_per_task_and_closed_after_it() -> None:
    # Given a handler that takes the spec, the project, the stage and a nested generator dependency twice
    CALLS.clear()
    runner = QueueRunner(project="apples")
    seen: list[tuple[str, str, str, str]] = []

    @runner.stage("Pre-label")
    def handler(
        spec: TaskSpec,
        project: ProjectInfo,
        stage: StageInfo,
        loud: Annotated[str, Depends(dep_shout)],
        again: str = Depends(dep_shout),  # type: ignore[assignment]
    ) -> str:
        seen.append((project.name, stage.title, loud, again))
        if spec.data_title == "bad.jpg":
            raise RuntimeError("cannot label this one")
        return "labelled"

    # When it runs on a batch of two tasks, the second failing
    ok, bad = run(handler, make_spec("a.jpg"), make_spec("bad.jpg"))

    # Then each dependency ran once per task and was closed after each, the failure included
    assert seen == [("apples", "Pre-label", "A.JPG", "A.JPG"), ("apples", "Pre-label", "BAD.JPG", "BAD.JPG")]
    assert CALLS == ["title", "open", "close"] * 2
    assert ok.success and ok.pathway == PATHWAYS["labelled"]
    assert not bad.success and bad.error is not None and "cannot label this one" in bad.error


def test_label_row_edits_travel_in_the_result() -> None:
    # Given a task whose spec carries two objects
    runner = QueueRunner(project="apples")
    objects = [{"object_hash": "o1", "name": "apple"}, {"object_hash": "o2", "name": "pear"}]
    spec = make_spec(labels=LabelPayload(version=4, objects=objects))

    @runner.stage("Pre-label")
    def handler(label_row: LabelRowEditor) -> None:
        label_row.change("o1", name="green apple")
        label_row.remove("o2")
        label_row.add({"object_hash": "o3", "name": "plum"})
        label_row.set_priority(0.0)

    # When it runs
    (result,) = run(handler, spec)

    # Then the result stays in the stage and carries the edited row, its read version and priority 0.0
    assert handler.include_labels  # asked for because the handler takes the row
    assert result.success and result.pathway is None and result.priority == 0.0
    assert result.labels is not None and result.labels.version == 4
    assert [(o["object_hash"], o["name"]) for o in result.labels.objects] == [("o1", "green apple"), ("o3", "plum")]


def test_editing_labels_that_were_not_loaded_fails_the_task() -> None:
    # Given a handler registered without labels that edits the row
    runner = QueueRunner(project="apples")

    @runner.stage("Pre-label", include_labels=False)
    def handler(label_row: LabelRowEditor) -> str:
        label_row.add({"name": "apple"})
        return "labelled"

    # When it runs
    (result,) = run(handler, make_spec())

    # Then the task fails with how to fix it, rather than overwrite the labels people made
    assert not result.success and result.error is not None and "include_labels=True" in result.error


def test_unknown_parameter_is_refused_at_registration() -> None:
    # Given a runner
    runner = QueueRunner(project="apples")

    # When a handler takes a parameter nothing can provide
    def handler(size: int) -> str:
        return "labelled"

    # Then registering it says which types can be injected
    with pytest.raises(InvalidInputError, match=r"cannot be injected.*Depends"):
        runner.stage("Pre-label")(handler)


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on localhost serving tmp_path."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_assets_are_fetched_for_the_batch_and_removed_after_each_task(http_dir: tuple[str, Path]) -> None:
    # Given one file served over HTTP, one on disk, and one URL that does not exist
    base, root = http_dir
    (root / "a.jpg").write_bytes(b"http bytes")
    local = root / "b.png"
    local.write_bytes(b"file bytes")
    specs = [make_spec("a.jpg", f"{base}/a.jpg"), make_spec("b.png", local.as_uri()), make_spec("c", f"{base}/no")]
    runner = QueueRunner(project="apples")
    paths: list[Path] = []

    @runner.stage("Pre-label")
    def handler(asset: Annotated[Path, Depends(dep_asset)]) -> str:
        paths.append(asset)
        assert asset.exists()
        return "labelled" if asset.read_bytes() in (b"http bytes", b"file bytes") else "skip"

    # When the batch runs
    a, b, c = run(handler, *specs)

    # Then both files were read locally and are gone; the missing one failed with its URL
    assert a.success and b.success and a.pathway == b.pathway == PATHWAYS["labelled"]
    assert [p.suffix for p in paths] == [".jpg", ".png"] and not any(p.exists() for p in paths)
    assert local.exists()  # the original is untouched
    assert not c.success and c.error is not None and f"{base}/no" in c.error
