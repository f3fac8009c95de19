"""A small typed client of Label Studio's REST API (httpx), with its failures as one-line annoflow errors.

Label Studio 1.2x wants personal access tokens: a JWT refresh token that buys short-lived access
tokens at ``/api/token/refresh``. A legacy token (no dots) is sent as ``Token ...``. The token is
never put in a message or a log line.
"""

from __future__ import annotations

from typing import Any

import httpx

from common.errors import InvalidInputError, NotFoundError, TransientError

__all__ = [
    "WEBHOOK_ACTIONS",
    "WEBHOOK_SECRET_HEADER",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioConfigError",
    "LabelStudioUnreachableError",
]

# The Label Studio webhook actions annoflow applies; the webhook app answers any other one and ignores it.
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
# The header that carries ANNOFLOW_LABELSTUDIO_WEBHOOK_SECRET in each webhook Label Studio sends.
WEBHOOK_SECRET_HEADER = "X-Annoflow-Secret"


class LabelStudioAuthError(InvalidInputError):
    """Label Studio refused the token."""


class LabelStudioUnreachableError(TransientError):
    """Label Studio does not answer at its URL."""


class LabelStudioConfigError(InvalidInputError):
    """A Label Studio project's labelling config is not one annoflow can map."""


class LabelStudioClient:
    """The few calls the connector makes, on one HTTP connection pool."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        if not token:
            raise LabelStudioAuthError(
                "no Label Studio token; set ANNOFLOW_LABELSTUDIO_TOKEN to a personal access token "
                "(Label Studio: Account & Settings > Personal Access Token)"
            )
        self.url = url.rstrip("/")
        self._token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._access: str | None = None

    def close(self) -> None:
        self._http.close()

    def _auth(self) -> dict[str, str]:
        if self._token.count(".") != 2:
            return {"Authorization": f"Token {self._token}"}
        if self._access is None:
            r = self._send("POST", "/api/token/refresh", json={"refresh": self._token}, auth=False)
            self._access = str(r.json()["access"])
        return {"Authorization": f"Bearer {self._access}"}

    def _send(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        try:
            headers = self._auth() if auth else {}
            r = self._http.request(method, path, headers=headers, **kw)
            if r.status_code == 401 and auth and self._access is not None:
                self._access = None  # the access token expired: buy a new one once
                r = self._http.request(method, path, headers=self._auth(), **kw)
        except httpx.TransportError as e:
            raise LabelStudioUnreachableError(
                f"Label Studio at {self.url} does not answer ({type(e).__name__}); "
                "start it or fix ANNOFLOW_LABELSTUDIO_URL"
            ) from e
        if r.status_code in (401, 403) or (path == "/api/token/refresh" and r.status_code == 400):
            raise LabelStudioAuthError(
                f"Label Studio at {self.url} refused the token (HTTP {r.status_code}); set ANNOFLOW_LABELSTUDIO_TOKEN "
                "to a valid personal access token (Account & Settings > Personal Access Token)"
            )
        if r.status_code == 404:
            raise NotFoundError(f"Label Studio at {self.url} has no {path}; check the project or task id")
        if r.status_code >= 400:
            raise InvalidInputError(
                f"Label Studio at {self.url} answered {method} {path} with HTTP {r.status_code}: {r.text[:300]}"
            )
        return r

    def get(self, path: str, **params: Any) -> Any:
        return self._send("GET", path, params=params).json()

    def post(self, path: str, body: Any) -> Any:
        return self._send("POST", path, json=body).json()

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        return dict(self.post("/api/projects", {"title": title, "label_config": label_config}))

    def project(self, project_id: int) -> dict[str, Any]:
        return dict(self.get(f"/api/projects/{project_id}"))

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of a project (with its annotations), page by page."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.get("/api/tasks", project=project_id, page=page, page_size=500, fields="all")
            batch = body["tasks"] if isinstance(body, dict) else body
            out.extend(batch)
            if len(batch) < 500:
                return out
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        self.post(f"/api/projects/{project_id}/import", tasks)

    def task(self, task_id: int) -> dict[str, Any]:
        return dict(self.get(f"/api/tasks/{task_id}"))

    def annotation(self, annotation_id: int) -> dict[str, Any]:
        return dict(self.get(f"/api/annotations/{annotation_id}"))

    def user_email(self, user: int | dict[str, Any]) -> str:
        """The e-mail of an annotation's ``completed_by`` (an id, or the user inlined)."""
        if isinstance(user, dict) and user.get("email"):
            return str(user["email"])
        uid = user["id"] if isinstance(user, dict) else user
        return str(self.get(f"/api/users/{uid}")["email"])

    def ensure_local_storage(self, project_id: int, root: str) -> None:
        """Give the project a local-files storage of ``root``: Label Studio serves /data/local-files/ only under one."""
        have = self.get("/api/storages/localfiles", project=project_id)
        if not any(s.get("path") == root for s in have):
            body = {"project": project_id, "path": root, "title": "annoflow", "use_blob_urls": True}
            self.post("/api/storages/localfiles", body)

    def patch(self, path: str, body: Any) -> Any:
        return self._send("PATCH", path, json=body).json()

    def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        """The webhooks of one project."""
        return [dict(h) for h in self.get("/api/webhooks", project=project_id) if h.get("project") == project_id]

    def ensure_webhook(self, project_id: int, url: str, secret: str = "") -> tuple[dict[str, Any], bool]:
        """Make the project send ANNOTATION_CREATED and ANNOTATION_UPDATED, with their payload, to ``url``.

        With a ``secret`` each request carries it in the :data:`WEBHOOK_SECRET_HEADER` header. A webhook of
        the project with that URL is kept (its actions and headers brought up to date), not duplicated.
        Returns the webhook and whether it was created now.

        Raises:
            InvalidInputError: Label Studio refused the URL (its SSRF protection refuses loopback and
                private addresses unless SSRF_PROTECTION_ENABLED=false on the Label Studio server).
        """
        body: dict[str, Any] = {
            "project": project_id,
            "url": url,
            "send_payload": True,
            "send_for_all_actions": False,
            "headers": {WEBHOOK_SECRET_HEADER: secret} if secret else {},
            "is_active": True,
            "actions": list(WEBHOOK_ACTIONS),
        }
        for hook in self.webhooks(project_id):
            if hook.get("url") != url:
                continue
            stale = [k for k, v in body.items() if k != "actions" and hook.get(k) != v]
            if stale or set(hook.get("actions") or []) != set(WEBHOOK_ACTIONS):
                # The whole body: an update without "actions" would clear the hook's actions.
                update = {k: v for k, v in body.items() if k != "project"}
                hook = dict(self.patch(f"/api/webhooks/{hook['id']}", update))
            return hook, False
        try:
            return dict(self.post("/api/webhooks", body)), True
        except InvalidInputError as e:
            if "not allowed" not in str(e):
                raise
            raise InvalidInputError(
                f"Label Studio at {self.url} refused the webhook URL {url}: {e}; a loopback or private address "
                "needs SSRF_PROTECTION_ENABLED=false (or USE_DEFAULT_BANNED_SUBNETS=false) on the Label Studio server"
            ) from e
