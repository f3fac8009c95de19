"""Optional test packages: skip loudly when one is missing here, fail in CI (CI=true)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require_module(name: str, pip_name: str | None = None) -> ModuleType:
    """Import ``name``; skip the test without it, or fail it when CI=true (the dev extra must install it)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        reason = f"{pip_name or name} is not installed; pip install -e '.[dev]' to run this test"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI: {reason}", pytrace=False)
        pytest.skip(f"SKIPPED LOUDLY: {reason}")
