"""Label Studio webhooks: each annotation created or updated there applied once to its annoflow task."""

from producer.labelstudio.server import WEBHOOK_PATH, WebhookServer, status_of
from producer.labelstudio.webhook import Delivery, Outcome, WebhookApp, WebhookPayloadError, WebhookSecretError

__all__ = [
    "WEBHOOK_PATH",
    "Delivery",
    "Outcome",
    "WebhookApp",
    "WebhookPayloadError",
    "WebhookSecretError",
    "WebhookServer",
    "status_of",
]
