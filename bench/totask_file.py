"""``annoflow bench totask-file``: annotation files applied per second, end to end.

A local HTTP server (its own process, on 127.0.0.1) serves one small native JSON
annotation file per data unit; a ToTask run claims the tasks, publishes them
through Redis to one ``annoflow totask worker`` (a prefork pool of ``workers``
processes) that downloads, converts and checks each file, and applies the results
to the store. The worker is started and warmed up first (a 200-file run), so the
timed run measures the pipeline, not Python's imports.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import redis

from common.celery_app import PipelineSettings
from common.enums import Role
from common.settings import Settings
from common.store import DataFile, DataUnit, Store
from common.workflow import parse_workflow
from producer.totask.action import ToTaskAction, ToTaskOptions
from producer.totask.workers import spawn_totask_worker, stop_worker

__all__ = ["bench_totask_file", "serve_annotations"]

_WORKFLOW = {
    "name": "BenchToTask",
    "start": "Annotate",
    "stages": [
        {"title": "Annotate", "type": "annotation", "pathways": {"submit": "Complete"}},
        {"title": "Complete", "type": "complete"},
    ],
}
_BODY = json.dumps(
    {
        "objects": [
            {"id": "a", "class_id": 1, "type": "bbox", "coordinates": {"x": 10, "y": 20, "width": 30, "height": 40}},
            {"id": "b", "class_id": 2, "type": "polygon", "coordinates": {"points": [[1, 1], [50, 1], [25, 40]]}},
        ]
    }
).encode()


_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


class _AnnotationServer(asyncio.Protocol):
    """Answers every GET on a kept-alive connection with the same annotation file.

    A few lines of asyncio instead of ``http.server``: on a 2-core machine the file
    server shares the CPU with the pipeline it feeds, and this one costs a fraction
    of a thread-per-connection server, so the figure is the pipeline's, not the server's.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        # Requests are GETs without bodies: each ends with a blank line.
        *requests, self.pending = self.pending.split(b"\r\n\r\n")
        if requests:
            self.transport.write(_RESPONSE * len(requests))


def serve_annotations(port_out: Connection) -> None:
    """Serve the same small annotation file at every path until killed; send the port first."""

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_AnnotationServer, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def _units(n: int, base: str, offset: int) -> Any:
    for i in range(offset, offset + n):
        yield DataUnit(
            data_hash=str(uuid.UUID(int=i + 1)),
            title=f"item-{i}.jpg",
            meta={"width": 640, "height": 480},
            files={
                "image": DataFile(url=f"{base}/img/{i}.jpg", is_primary=True),
                "annotations": DataFile(url=f"{base}/ann/{i}.json"),
            },
        )


def _run(store: Store, settings: Settings, project: str, dataset: str, workers: int, batch: int) -> dict[str, Any]:
    params = {
        "name": f"bench_{dataset}",
        "project": project,
        "agent": "bench@annoflow.local",
        "task_filters": {"data_collection": dataset},
        "method": "file",
        "target_specification_name": "annotations",
        "batch_size": batch,
    }
    options = ToTaskOptions(workers=0, max_in_flight=max(4, 2 * workers), stall_timeout=120)
    return ToTaskAction(params, store=store, settings=settings, options=options).start()


def bench_totask_file(
    broker_url: str, files: int, *, workers: int = 2, batch_size: int = 200, store_url: str | None = None
) -> dict[str, Any]:
    """Run the benchmark and return ``files_per_s`` with its setup.

    Raises:
        RuntimeError: the warm-up or the timed run did not succeed.
    """
    tmp = Path(tempfile.mkdtemp(prefix="annoflow-bench-totask-"))
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve_annotations, args=(child,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{parent.recv()}"
    settings = Settings(broker_url=broker_url, home=tmp)
    pipeline = PipelineSettings()
    store = Store.open(store_url or f"sqlite:///{tmp / 'bench.db'}")
    project = store.create_project(f"bench-{uuid.uuid4().hex[:8]}", parse_workflow(_WORKFLOW, "bench workflow"))
    store.set_role(project.id, "bench@annoflow.local", Role.ANNOTATOR)
    warm = min(200, files)
    store.add_data_units(project.id, store.dataset(project.id, "warmup"), _units(warm, base, files))
    store.add_data_units(project.id, store.dataset(project.id, "timed"), _units(files, base, 0))
    worker = spawn_totask_worker(settings, pipeline, "file", workers, tmp / "worker.log", tmp)
    try:
        warmup = _run(store, settings, project.id, "warmup", workers, batch_size)
        if warmup["status"] != "SUCCEEDED":
            raise RuntimeError(f"warm-up run failed: {warmup['message']}")
        start = time.perf_counter()
        timed = _run(store, settings, project.id, "timed", workers, batch_size)
        seconds = time.perf_counter() - start
        if timed["status"] != "SUCCEEDED":
            raise RuntimeError(f"timed run failed: {timed['message']}")
        labelled = sum(1 for t in store.iter_tasks(project.id) if store.get_label_row(project.id, t.data_hash).objects)
    finally:
        stop_worker(worker, idle=True)
        server.kill()
        redis.Redis.from_url(broker_url).delete("totask.file")
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    m = timed["metrics"]
    return {
        "files": files,
        "files_per_s": round(files / seconds, 1),
        "seconds": round(seconds, 2),
        "success": m["success"],
        "failed": m["failed"],
        "label_rows_written": labelled - warm,
        "worker_processes": workers,
        "batch_size": batch_size,
        "store": "sqlite" if store_url is None else store_url.split(":", 1)[0],
        "broker": "redis",
        "cpu_count": os.cpu_count(),
    }
