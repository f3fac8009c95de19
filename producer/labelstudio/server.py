"""The webhook app over HTTP: the standard library's single-threaded server, POST /webhook, GET /health.

One request at a time keeps the store's writes in order and needs no locking; a delivery is a few
local reads and one transaction, and Label Studio waits for it (WEBHOOK_TIMEOUT, 1 s by default).
Errors answer with one line in ``{"error": ...}``: 400 a malformed payload, 401 a missing secret,
404 an unknown Label Studio project, 502 Label Studio refusing annoflow's token, 503 Label Studio
not answering.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from common.errors import AnnoflowError, NotFoundError, TransientError
from common.labelstudio import WEBHOOK_SECRET_HEADER
from producer.labelstudio.webhook import WebhookApp, WebhookPayloadError, WebhookSecretError

__all__ = ["WEBHOOK_PATH", "WebhookServer", "status_of"]

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook"
_MAX_BODY = 16 * 1024 * 1024  # a webhook carries one annotation, its task and project

# The first matching class gives the status; any other annoflow error came from Label Studio's answers.
_STATUS: list[tuple[type[AnnoflowError], int]] = [
    (WebhookSecretError, 401),
    (WebhookPayloadError, 400),
    (NotFoundError, 404),
    (TransientError, 503),
]


def status_of(error: AnnoflowError) -> int:
    """The HTTP status a delivery's error answers with."""
    return next((status for cls, status in _STATUS if isinstance(error, cls)), 502)


class WebhookServer(HTTPServer):
    """Serves one :class:`WebhookApp` on ``(host, port)``; port 0 picks a free one (see :attr:`port`)."""

    def __init__(self, address: tuple[str, int], app: WebhookApp) -> None:
        self.app = app
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    server_version = "annoflow-webhook"
    timeout = 30  # a client that stops sending does not hold the single thread forever

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/health":
            self._answer(200, {"ok": True})
        else:
            self._answer(404, {"error": f"no {self.path} here; Label Studio posts to {WEBHOOK_PATH}"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != WEBHOOK_PATH:
            self._answer(404, {"error": f"no {self.path} here; Label Studio posts to {WEBHOOK_PATH}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._answer(400, {"error": "Content-Length is not a number"})
            return
        if not 0 < length <= _MAX_BODY:
            self._answer(400, {"error": f"a webhook body of {length} bytes; Label Studio posts 1 byte to 16 MiB"})
            return
        body = self.rfile.read(length)
        try:
            delivery = self.server.app.deliver(body, self.headers.get(WEBHOOK_SECRET_HEADER))
        except AnnoflowError as e:
            status = status_of(e)
            logger.warning("webhook refused (HTTP %s): %s", status, e)
            self._answer(status, {"error": str(e)})
        except Exception:
            logger.exception("webhook failed")
            self._answer(500, {"error": "the webhook failed inside annoflow; see the server's log"})
        else:
            self._answer(200, delivery.body())

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # Label Studio stopped waiting (WEBHOOK_TIMEOUT); what the delivery did is done and logged.
            logger.info("Label Studio closed the connection before the answer (HTTP %s)", status)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
