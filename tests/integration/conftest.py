"""Integration fixtures shared across modules: one real Label Studio server per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.labelstudio import LabelStudioClient
from tests.labelstudio.server import LabelStudio, start


@pytest.fixture(scope="session")
def ls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    """A Label Studio on loopback started from the prepared template (about 8 s, paid once a session)."""
    yield from start(tmp_path_factory.mktemp("labelstudio"))


@pytest.fixture
def client(ls: LabelStudio) -> Iterator[LabelStudioClient]:
    """A client of that Label Studio, as its admin (the token of the prepared template)."""
    c = LabelStudioClient(ls.url, ls.token)
    yield c
    c.close()
