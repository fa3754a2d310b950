"""pytest fixtures for the local OpenRouter server (``pytest_plugins = ["tests.support.fixtures"]``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_server import FakeOpenRouter

__all__ = ["openrouter_server"]


@pytest.fixture
def openrouter_server() -> Iterator[FakeOpenRouter]:
    """A fresh :class:`FakeOpenRouter` on 127.0.0.1, stopped after the test."""
    with FakeOpenRouter() as server:
        yield server
