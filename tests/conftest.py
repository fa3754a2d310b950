"""Shared fixtures. Tests never touch the network: cassettes or servers on 127.0.0.1."""

from __future__ import annotations

import pytest
from llmrelay.core import PluginRegistry


@pytest.fixture
def registry() -> PluginRegistry:
    """A registry with the installed entry points plus the tests' fake provider."""
    from tests.support import fake_provider

    reg = PluginRegistry()
    reg.register(fake_provider, name="fake")
    return reg
