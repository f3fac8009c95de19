"""Fetch a batch's primary files to local temporary files, concurrently, before its tasks run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from common.models import TaskSpec

__all__ = ["fetch_assets"]

_TIMEOUT_S = 60.0
_MAX_PARALLEL = 8


def _primary_url(spec: TaskSpec) -> str | None:
    files = list(spec.files.values())
    for f in files:
        if f.is_primary:
            return f.url
    return files[0].url if len(files) == 1 else None


def _fetch(client: httpx.Client, url: str, target: Path) -> None:
    parsed = urlparse(url)
    if parsed.scheme in ("file", ""):
        shutil.copyfile(unquote(parsed.path) if parsed.scheme else url, target)
        return
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"cannot fetch {url!r}: only file://, http:// and https:// URLs are supported")
    with client.stream("GET", url) as response, target.open("wb") as out:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            out.write(chunk)


@contextmanager
def fetch_assets(specs: list[TaskSpec]) -> Iterator[dict[str, Path | str]]:
    """Fetch each spec's primary file into a temporary directory removed on exit.

    Yields a mapping from task UUID to the local path, or to an error message
    saying why that task's file could not be fetched (the task then fails,
    the others run).
    """
    with tempfile.TemporaryDirectory(prefix="annoflow-assets-") as tmp:
        out: dict[str, Path | str] = {}
        jobs: list[tuple[str, str, Path]] = []
        for i, spec in enumerate(specs):
            url = _primary_url(spec)
            if url is None:
                out[str(spec.uuid)] = (
                    f"data unit {spec.data_title!r} has no primary file; mark one file is_primary=True on import"
                )
                continue
            suffix = Path(urlparse(url).path).suffix
            jobs.append((str(spec.uuid), url, Path(tmp) / f"{i}{suffix}"))
        if jobs:
            with (
                httpx.Client(timeout=_TIMEOUT_S, follow_redirects=True) as client,
                ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, len(jobs))) as pool,
            ):
                futures = {key: (url, target, pool.submit(_fetch, client, url, target)) for key, url, target in jobs}
                for key, (url, target, future) in futures.items():
                    try:
                        future.result()
                        out[key] = target
                    except (OSError, ValueError, httpx.HTTPError) as e:
                        out[key] = f"could not fetch {url}: {e}; check that the URL is reachable from the worker"
        yield out
