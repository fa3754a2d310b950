"""Running one function on many threads at once, for the thread-safety tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["run_in_threads"]


def run_in_threads(
    target: Callable[..., Any],
    times: int | None = None,
    *,
    args: Iterable[tuple[Any, ...]] | None = None,
    timeout: float = 30.0,
) -> None:
    """Start ``target`` on ``times`` threads (or one per tuple of ``args``) and wait for all of them.

    A thread still running after ``timeout`` seconds fails the test: a hang
    must not pass as a result that was never checked.
    """
    calls = list(args) if args is not None else [()] * (times or 0)
    threads = [threading.Thread(target=target, args=call, daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = sum(thread.is_alive() for thread in threads)
    assert not stuck, f"{stuck} of {len(threads)} threads still running after {timeout} s"
