"""Where Label Studio is, its token and the webhook secret, read once from ANNOFLOW_LABELSTUDIO_* variables."""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LabelStudioSettings"]


class LabelStudioSettings(BaseSettings):
    """The Label Studio server; the token and the webhook secret are :class:`SecretStr`s, never in a repr or a log."""

    model_config = SettingsConfigDict(env_prefix="ANNOFLOW_LABELSTUDIO_", extra="ignore")

    url: str = "http://127.0.0.1:8080"
    token: SecretStr = SecretStr("")
    # Images under this folder are pushed as local-files storage URLs (/data/local-files/?d=...); the server
    # must serve the same folder (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT).
    local_files_root: str = ""
    # When set, Label Studio sends it in the X-Annoflow-Secret header of each webhook (``labelstudio hook``
    # registers it) and the webhook app refuses a request without it.
    webhook_secret: SecretStr = SecretStr("")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"ANNOFLOW_LABELSTUDIO_URL={value!r} is not an http(s) URL; use http://HOST:8080")
        return value.rstrip("/")
