"""Optional test packages: skip loudly when one is missing here, fail in CI (CI=true)."""

from __future__ import annotations

import importlib
from types import ModuleType

from tests.servers import missing


def require_module(name: str, pip_name: str | None = None) -> ModuleType:
    """Import ``name``; skip the test without it, or fail it when CI=true (the dev extra must install it)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"{pip_name or name} is not installed; pip install -e '.[dev]' to run this test")
