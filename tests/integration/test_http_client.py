"""The downloader's keep-alive HTTP client against a real server on 127.0.0.1: connection
reuse, redirects, a server that drops idle connections, refused connections."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from common.totask.http import HttpClient, HttpFailure
from tests.servers import free_port

pytestmark = pytest.mark.integration


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.connections.add(self.client_address)
        if self.path == "/moved":
            self._answer(302, b"see /data.json", {"Location": "/data.json"})
        elif self.path == "/loop":
            self._answer(302, b"", {"Location": "/loop"})
        elif self.path == "/drop":  # claims keep-alive, then hangs up
            self._answer(200, b'{"dropped": true}', {})
            self.close_connection = True
        else:
            self._answer(200, b'{"ok": true}', {})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections: set[tuple[str, int]] = set()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(client: HttpClient, url: str) -> tuple[int, bytes]:
    with client.get(url) as resp:
        return resp.status, resp.read()


def test_one_connection_carries_many_requests(server: _Server) -> None:
    # Given a client
    client = HttpClient(connect_timeout=2, read_timeout=2)
    # When one thread fetches five files
    answers = [_get(client, f"{server.url}/f{i}.json") for i in range(5)]
    # Then all arrive over a single kept-alive connection
    assert answers == [(200, b'{"ok": true}')] * 5
    assert len(server.connections) == 1
    client.close()


def test_redirects_are_followed_and_loops_refused(server: _Server) -> None:
    client = HttpClient(connect_timeout=2, read_timeout=2)
    # When a file has moved, the client follows the Location
    assert _get(client, f"{server.url}/moved") == (200, b'{"ok": true}')
    # And a redirect loop is a failure, not a hang
    with pytest.raises(HttpFailure, match="more than 5 redirects"):
        _get(client, f"{server.url}/loop")
    client.close()


def test_a_connection_the_server_dropped_is_reopened(server: _Server) -> None:
    # Given a server that hangs up after answering
    client = HttpClient(connect_timeout=2, read_timeout=2)
    assert _get(client, f"{server.url}/drop") == (200, b'{"dropped": true}')
    # When the next request goes out on the stale connection
    # Then it is sent again on a new one, not reported as a failure
    assert _get(client, f"{server.url}/after.json") == (200, b'{"ok": true}')
    assert len(server.connections) == 2
    client.close()


def test_refused_connection_is_a_failure() -> None:
    # Given a port nobody listens on
    client = HttpClient(connect_timeout=2, read_timeout=2)
    # Then the request fails with the reason
    with pytest.raises(HttpFailure, match="connection failed"):
        _get(client, f"http://127.0.0.1:{free_port()}/x.json")
