"""A clock the tests move by hand: time-dependent behaviour without sleeping."""

from __future__ import annotations


class FakeClock:
    """Callable like ``time.monotonic``; ``advance`` (or set ``now``) moves it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
