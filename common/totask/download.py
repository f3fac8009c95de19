"""Fetching annotation files and images: http(s) with a pooled client, file:// and paths under roots.

A worker downloads a whole batch at once on a thread pool, each thread over its own
kept-alive connections (:mod:`common.totask.http`, cheap per request, which matters with
many small files),
with timeouts, retries with exponential backoff on timeouts, connection errors and 5xx
(never on 4xx: asking again will not change the answer), a size cap, and JSON parsing
that refuses absurd nesting. The client and pool are made lazily, so a worker that forks
after import gets its own.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, Field

from common.errors import AnnoflowError, InvalidInputError, NotFoundError, TransientError
from common.totask.http import HttpClient, HttpFailure

__all__ = ["DownloadSettings", "Fetcher", "parse_json"]

_MB = 1024 * 1024
_CHUNK = 256 * 1024  # read size: small files arrive in one read, big ones never all at once


class DownloadSettings(BaseModel):
    """Limits of a worker's downloads; read once at worker start and passed in."""

    allowed_roots: list[Path] = Field(default_factory=list, description="folders file:// URLs and paths may read")
    max_bytes: int = Field(50 * _MB, ge=1)
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, description="attempts after the first, on timeouts and 5xx")
    backoff: float = Field(0.2, ge=0, description="first retry delay in seconds; doubles each retry")
    max_backoff: float = Field(5.0, ge=0)
    concurrency: int = Field(16, ge=1, description="downloads in flight per worker process")
    max_json_depth: int = Field(64, ge=1)


def _human(size: int) -> str:
    return f"{size / _MB:.1f} MB" if size >= _MB else f"{size} bytes"


def _too_deep(data: Any, limit: int) -> bool:
    # Iterative, so a deep document cannot blow our own stack while we measure it.
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def parse_json(raw: bytes, source: str, max_depth: int = 64) -> Any:
    """Parse JSON, refusing malformed text and nesting deeper than ``max_depth``.

    Raises:
        InvalidInputError: "Invalid JSON format in annotation file" with the position or depth.
    """
    try:
        data = json.loads(raw)
    except RecursionError as e:
        raise InvalidInputError(
            f"Invalid JSON format in annotation file {source}: nested deeper than the parser allows; "
            f"keep nesting under {max_depth} levels"
        ) from e
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"Invalid JSON format in annotation file {source}: {e}; fix the file's JSON") from e
    if _too_deep(data, max_depth):
        raise InvalidInputError(
            f"Invalid JSON format in annotation file {source}: nested deeper than {max_depth} levels; "
            "flatten the file (annotation files need only a few levels)"
        )
    return data


class Fetcher:
    """Downloads bytes or JSON, one at a time or a batch at once."""

    def __init__(self, settings: DownloadSettings | None = None) -> None:
        self.settings = settings or DownloadSettings()
        self._roots = [r.resolve() for r in self.settings.allowed_roots]
        self._lock = threading.Lock()
        self._pid = -1
        self._client: HttpClient | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _ensure(self) -> tuple[HttpClient, ThreadPoolExecutor]:
        with self._lock:
            if self._client is None or self._pool is None or self._pid != os.getpid():
                # After a fork the parent's sockets and threads are not ours: start afresh.
                s = self.settings
                # One kept-alive connection per host per thread: at most `concurrency` to a host.
                self._client = HttpClient(s.connect_timeout, s.read_timeout)
                self._pool = ThreadPoolExecutor(max_workers=s.concurrency, thread_name_prefix="totask-fetch")
                self._pid = os.getpid()
            return self._client, self._pool

    def close(self) -> None:
        """Close the pooled connections and the thread pool."""
        with self._lock:
            if self._pid == os.getpid():
                if self._client is not None:
                    self._client.close()
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
            self._client, self._pool, self._pid = None, None, -1

    def fetch(self, url: str, what: str = "JSON") -> bytes:
        """Download one URL or read one allowed local file.

        Raises:
            InvalidInputError: unsupported scheme, a path outside the roots, a 4xx answer, too large.
            NotFoundError: 404 or a missing local file.
            TransientError: timeouts, connection errors or 5xx persisted through every retry.
        """
        scheme = urlparse(url).scheme.lower()
        if scheme in ("http", "https"):
            return self._http(url, what)
        if scheme in ("file", ""):
            return self._local(url, what)
        raise InvalidInputError(
            f"Failed to download {what} from URL {url}: scheme {scheme!r} is not supported; "
            "use http://, https://, file:// or a path under a configured root folder"
        )

    def fetch_json(self, url: str) -> Any:
        """Download and parse one JSON file (see :meth:`fetch` and :func:`parse_json`)."""
        return parse_json(self.fetch(url, "JSON"), url, self.settings.max_json_depth)

    def fetch_many(self, urls: Sequence[str], what: str = "JSON") -> list[bytes | AnnoflowError]:
        """Download a batch concurrently; each slot holds the bytes or that URL's error."""
        return self._map(lambda u: self.fetch(u, what), urls)

    def fetch_json_many(self, urls: Sequence[str]) -> list[Any | AnnoflowError]:
        """Download and parse a batch of JSON files concurrently; errors stay per URL."""
        return self._map(self.fetch_json, urls)

    def _map(self, fn: Any, urls: Sequence[str]) -> list[Any]:
        if not urls:
            return []
        _, pool = self._ensure()

        out: list[Any] = [None] * len(urls)
        todo = enumerate(urls)  # shared: each thread takes the next URL when it is free
        taking = threading.Lock()

        def drain() -> None:
            while True:
                with taking:
                    item = next(todo, None)
                if item is None:
                    return
                i, u = item
                try:
                    out[i] = fn(u)
                except AnnoflowError as e:
                    out[i] = e

        # A handful of long-lived jobs instead of a future per URL (thread hand-offs per
        # file cost more than reading a small file).
        for job in [pool.submit(drain) for _ in range(min(self.settings.concurrency, len(urls)))]:
            job.result()
        return out

    def _local(self, url: str, what: str) -> bytes:
        parsed = urlparse(url)
        raw = unquote(parsed.path) if parsed.scheme == "file" else url
        path = Path(raw).resolve()
        if not any(path.is_relative_to(root) for root in self._roots):
            roots = ", ".join(str(r) for r in self._roots) or "none configured"
            raise InvalidInputError(
                f"Failed to download {what} from URL {url}: {path} is outside the allowed root folders "
                f"({roots}); move the file under a root or add its folder to the workers' allowed roots"
            )
        try:
            size = path.stat().st_size
            if size > self.settings.max_bytes:
                raise self._too_large(url, what, size)
            return path.read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(
                f"Failed to download {what} from URL {url}: no such file; check the data unit's file"
            ) from e
        except OSError as e:
            raise InvalidInputError(f"Failed to download {what} from URL {url}: {e.strerror}; check the file") from e

    def _too_large(self, url: str, what: str, size: int | None) -> InvalidInputError:
        got = _human(size) if size is not None else "the body"
        return InvalidInputError(
            f"Failed to download {what} from URL {url}: {got} is over the {_human(self.settings.max_bytes)} cap; "
            "split the file or raise the workers' download cap"
        )

    def _http(self, url: str, what: str) -> bytes:
        client, _ = self._ensure()
        s = self.settings
        last = ""
        for attempt in range(s.retries + 1):
            if attempt:
                delay = min(s.max_backoff, s.backoff * 2 ** (attempt - 1))
                time.sleep(delay * (0.5 + random.random() / 2))  # jitter: retries of a batch do not stampede
            try:
                with client.get(url) as resp:
                    if resp.status >= 500:
                        last = f"HTTP {resp.status}"
                        continue
                    if resp.status == 404:
                        raise NotFoundError(f"Failed to download {what} from URL {url}: HTTP 404; check the URL")
                    if resp.status >= 400:
                        raise InvalidInputError(
                            f"Failed to download {what} from URL {url}: HTTP {resp.status}; "
                            "check the URL and its access rights"
                        )
                    declared = resp.getheader("content-length")
                    if declared and declared.isdigit() and int(declared) > s.max_bytes:
                        raise self._too_large(url, what, int(declared))
                    chunks, total = [], 0
                    while chunk := resp.read(_CHUNK):
                        total += len(chunk)
                        if total > s.max_bytes:  # the header may lie or be absent
                            raise self._too_large(url, what, None)
                        chunks.append(chunk)
                    return b"".join(chunks)
            except HttpFailure as e:
                last = str(e)
            except TimeoutError as e:  # while reading the body
                last = f"timed out ({type(e).__name__})"
            except (OSError, http.client.HTTPException) as e:
                last = f"connection failed ({type(e).__name__}: {e})"
        raise TransientError(
            f"Failed to download {what} from URL {url}: {last} after {s.retries + 1} attempts; "
            "check the server is up and reachable from the workers"
        )
