"""A small keep-alive HTTP(S) GET client on the standard library, for the ToTask downloader.

Each thread keeps one connection per host and reuses it while the server allows. A
worker fetches many small files, and per request ``http.client`` costs about 100 us of
CPU here, against about 240 for urllib3 and more for httpx: with files of a few hundred
bytes that is most of a worker's time. Redirects are followed (up to five); a kept-alive
connection that the server closed meanwhile is reopened once without counting as a
failure. Retries, backoff and status handling are the caller's (:mod:`common.totask.download`).
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urljoin, urlsplit

__all__ = ["HttpClient", "HttpFailure"]

_REDIRECTS = {301, 302, 303, 307, 308}
_HEADERS = {"User-Agent": "annoflow", "Accept": "*/*"}
_Key = tuple[str, str, int]


class HttpFailure(Exception):
    """The request did not get an answer: a timeout, a refused or broken connection."""


class HttpClient:
    """GET requests over per-thread kept-alive connections."""

    def __init__(self, connect_timeout: float, read_timeout: float, max_redirects: int = 5) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_redirects = max_redirects
        self._local = threading.local()
        self._ssl: ssl.SSLContext | None = None
        self._all: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    @contextmanager
    def get(self, url: str) -> Iterator[http.client.HTTPResponse]:
        """The response to ``GET url`` (after redirects), its body for the caller to read.

        A body not read to its end leaves the connection closed, not reused.

        Raises:
            HttpFailure: no answer (timeout, connection refused or reset), or a redirect loop.
        """
        for _ in range(self.max_redirects + 1):
            key, conn, resp = self._send(url)
            location = resp.getheader("location")
            if resp.status in _REDIRECTS and location:
                self._finish(key, conn, resp, drain=True)
                url = urljoin(url, location)
                continue
            try:
                yield resp
            finally:
                self._finish(key, conn, resp, drain=False)
            return
        raise HttpFailure(f"more than {self.max_redirects} redirects")

    def close(self) -> None:
        """Close every connection of every thread."""
        with self._lock:
            conns, self._all = self._all, set()
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def _send(self, url: str) -> tuple[_Key, http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        key = (scheme, host, parts.port or (443 if scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for may_reopen in (True, False):
            conn = self._connection(key)
            reused = conn.sock is not None
            try:
                if not reused:
                    conn.connect()  # within the connect timeout
                    assert conn.sock is not None
                    conn.sock.settimeout(self.read_timeout)
                conn.request("GET", target, headers=_HEADERS)
                return key, conn, conn.getresponse()
            except TimeoutError as e:
                self._drop(key, conn)
                raise HttpFailure(f"timed out ({type(e).__name__})") from e
            except (OSError, http.client.HTTPException) as e:
                self._drop(key, conn)
                if reused and may_reopen:
                    continue  # the server closed the idle connection: open a new one
                raise HttpFailure(f"connection failed ({type(e).__name__}: {e})") from e
        raise AssertionError("unreachable")

    def _connection(self, key: _Key) -> http.client.HTTPConnection:
        conns: dict[_Key, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(key)
        if conn is None:
            scheme, host, port = key
            if scheme == "https":
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                conn = http.client.HTTPSConnection(host, port, timeout=self.connect_timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
            conns[key] = conn
            with self._lock:
                self._all.add(conn)
        return conn

    def _finish(
        self, key: _Key, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, *, drain: bool
    ) -> None:
        if drain and not resp.isclosed():
            with suppress(OSError, http.client.HTTPException):
                resp.read(64 * 1024)  # a redirect's short body, so the connection can be reused
        if not resp.isclosed():  # unread body left: the connection cannot carry another request
            self._drop(key, conn)

    def _drop(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.__dict__.get("conns", {}).pop(key, None)
        with self._lock:
            self._all.discard(conn)
