"""Fixtures for the tensor pre-processors: tiny ONNX detectors built at test time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.packages import require_module


@pytest.fixture
def onnx_models() -> Any:
    """The ``tests.unit.totask.onnx_models`` builders (skipped, or failed in CI, without the ``onnx`` package)."""
    require_module("onnx")
    from tests.unit.totask import onnx_models

    return onnx_models
