"""LabelStudioClient.ensure_webhook against a fake /api/webhooks (httpx MockTransport): one webhook per URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from common.errors import InvalidInputError
from common.labelstudio import WEBHOOK_SECRET_HEADER, LabelStudioClient

URL = "http://127.0.0.1:8765/webhook"


class FakeWebhooks:
    """Label Studio's webhook list, create and update; ``refuse`` answers a create as its SSRF check does."""

    def __init__(self) -> None:
        self.hooks: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.refuse = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.method == "GET" and request.url.path == "/api/webhooks":
            project = int(request.url.params["project"])
            return httpx.Response(200, json=[h for h in self.hooks if h["project"] == project])
        body = json.loads(request.content)
        if request.method == "POST" and request.url.path == "/api/webhooks":
            if self.refuse:
                return httpx.Response(500, json={"detail": "The provided URL was not allowed."})
            hook = {"id": len(self.hooks) + 1, **body}
            self.hooks.append(hook)
            return httpx.Response(201, json=hook)
        if request.method == "PATCH":
            hook = next(h for h in self.hooks if request.url.path == f"/api/webhooks/{h['id']}")
            hook.update(body)
            return httpx.Response(200, json=hook)
        return httpx.Response(404, json={})


@pytest.fixture
def fake() -> FakeWebhooks:
    return FakeWebhooks()


@pytest.fixture
def client(fake: FakeWebhooks) -> Iterator[LabelStudioClient]:
    c = LabelStudioClient("http://ls.invalid:8080", "legacy-token")
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(fake))
    yield c
    c.close()


def test_second_registration_keeps_the_one_webhook(client: LabelStudioClient, fake: FakeWebhooks) -> None:
    # When the same URL is registered twice for project 3, and once for project 4
    hook, created = client.ensure_webhook(3, URL, "s1")
    again, created_again = client.ensure_webhook(3, URL, "s1")
    other, created_other = client.ensure_webhook(4, URL)

    # Then project 3 has one webhook, sent with its payload, the secret header and the two annotation actions
    assert (created, created_again, created_other) == (True, False, True)
    assert again["id"] == hook["id"] != other["id"]
    assert [h["project"] for h in fake.hooks] == [3, 4]
    assert hook["send_payload"] is True and hook["headers"] == {WEBHOOK_SECRET_HEADER: "s1"}
    assert set(hook["actions"]) == {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}
    assert other["headers"] == {}
    assert not any(r.startswith("PATCH") for r in fake.requests)


def test_new_secret_updates_the_webhook_in_place(client: LabelStudioClient, fake: FakeWebhooks) -> None:
    # Given a webhook registered with one secret
    hook, _ = client.ensure_webhook(3, URL, "old")

    # When it is registered with another
    updated, created = client.ensure_webhook(3, URL, "new")

    # Then the same webhook carries the new header and still both actions
    assert not created and updated["id"] == hook["id"] and len(fake.hooks) == 1
    assert fake.hooks[0]["headers"] == {WEBHOOK_SECRET_HEADER: "new"}
    assert set(fake.hooks[0]["actions"]) == {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}


def test_refused_loopback_url_says_how_to_allow_it(client: LabelStudioClient, fake: FakeWebhooks) -> None:
    # Given a Label Studio whose SSRF protection refuses the URL
    fake.refuse = True

    # When the webhook is registered, Then one line says the server setting that allows it
    with pytest.raises(InvalidInputError) as info:
        client.ensure_webhook(3, URL)
    assert "SSRF_PROTECTION_ENABLED=false" in str(info.value) and "\n" not in str(info.value)
