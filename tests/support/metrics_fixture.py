"""A fixture that gives each test the process-wide metrics registry empty (import it, list it in ``__all__``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llmrelay.plugins.metrics import metrics_registry

__all__ = ["fresh_metrics"]


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    """Metrics series are process-wide, by provider name: each test counts from zero."""
    metrics_registry().clear()
    yield
    metrics_registry().clear()
