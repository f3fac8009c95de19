"""Settings, read once at process start from ANNOFLOW_* variables and passed in."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EMBEDDED_HOME", "Settings"]

EMBEDDED_HOME = Path(".annoflow")


class Settings(BaseSettings):
    """Where the store and the broker are.

    Unset, both are embedded under ``./.annoflow/`` and need no server.
    """

    model_config = SettingsConfigDict(env_prefix="ANNOFLOW_", extra="ignore")

    home: Path = EMBEDDED_HOME
    store_url: str = ""
    broker_url: str = ""
    user: str | None = None
    # Folders ToTask workers may read file:// URLs and plain paths from (os.pathsep-separated).
    file_roots: str = ""

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+")):
            raise ValueError(
                f"ANNOFLOW_STORE_URL={value!r} is not supported; use sqlite:///PATH or postgresql://USER@HOST/DB"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "filesystem://", "amqp://")):
            raise ValueError(
                f"ANNOFLOW_BROKER_URL={value!r} is not supported; use redis://HOST:6379/0 "
                "or leave it unset for the embedded broker"
            )
        return value

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.home / 'annoflow.db'}"

    @property
    def file_root_paths(self) -> list[Path]:
        """ANNOFLOW_FILE_ROOTS as paths (empty: local files are refused, only http(s) URLs are read)."""
        return [Path(p).expanduser() for p in self.file_roots.split(os.pathsep) if p.strip()]

    @property
    def is_embedded_broker(self) -> bool:
        return not self.broker_url or self.broker_url.startswith("filesystem://")
