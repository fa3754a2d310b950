"""Background refreshes: revalidation, refresh-ahead and warm-up, one per key at a time.

Tasks are kept per key with the time they are due. A daemon thread (started
on the first task, stopped by :meth:`Refresher.close`) runs them when due;
without the thread (``background=False``) :meth:`Refresher.run_pending`
runs what is due in the calling thread, which is how tests drive refreshes
with a fake clock.

At interpreter exit (``atexit``, before daemon threads are frozen) every
live refresher is closed: a daemon thread still running Python when the
interpreter finalizes is stopped mid-frame, and when that frame is inside
pydantic-core (a warm-up validating the model list it just fetched) the
process aborts ("FATAL: exception not rethrown", or a segfault) instead of
exiting. A program that never closes its provider must still exit cleanly.

A key has at most one task: submitting a revalidation for a key that already
has a scheduled refresh-ahead task moves that task forward instead of adding
a second, and nothing is submitted for a key whose refresh is running.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable

__all__ = ["Refresher", "Task"]

log = logging.getLogger("llmrelay.plugins.cache")

Task = Callable[[], None]

_IDLE_WAIT = 3600.0  # seconds the thread sleeps with nothing scheduled (it is woken on new work)
# At exit, how long a running refresh may take to finish: long enough to parse what it fetched; a fetch still
# waiting on the network after that is left, blocked in C code, which the interpreter's exit stops safely.
_EXIT_WAIT = 1.0

_live: weakref.WeakSet[Refresher] = weakref.WeakSet()  # refreshers whose thread was started


class Refresher:
    """Runs refresh tasks when they are due, at most one per key at a time."""

    def __init__(self, *, clock: Callable[[], float], background: bool, name: str = "llmrelay-cache-refresh") -> None:
        self._clock = clock
        self._background = background
        self._name = name
        self._due: dict[str, tuple[float, Task]] = {}
        self._running: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ scheduling

    def schedule(self, key: str, due: float, task: Task) -> None:
        """Run ``task`` for ``key`` at ``due`` (replacing the key's scheduled task)."""
        with self._cond:
            if self._closed:
                return
            self._due[key] = (due, task)
            self._start_locked()
            self._cond.notify()

    def submit(self, key: str, task: Task) -> bool:
        """Run ``task`` as soon as possible unless a refresh of ``key`` is running or already due."""
        now = self._clock()
        with self._cond:
            if self._closed or key in self._running:
                return False
            scheduled = self._due.get(key)
            if scheduled is not None:
                if scheduled[0] <= now:
                    return False
                # A refresh-ahead task does what a revalidation would: run it now.
                task = scheduled[1]
            self._due[key] = (now, task)
            self._start_locked()
            self._cond.notify()
            return True

    def scheduled(self) -> dict[str, float]:
        """When each pending key is due (for inspection and tests)."""
        with self._cond:
            return {key: due for key, (due, _) in self._due.items()}

    # ------------------------------------------------------------------ running

    def _claim_due(self, now: float, only: set[str] | None = None) -> list[tuple[str, Task]]:
        claimed = []
        for key, (due, task) in list(self._due.items()):
            if due <= now and key not in self._running and (only is None or key in only):
                del self._due[key]
                self._running.add(key)
                claimed.append((key, task))
        return claimed

    def _run(self, key: str, task: Task) -> None:
        try:
            task()
        except Exception:  # a task handles its own errors; this keeps the thread alive regardless
            log.exception("cache refresh task for %s failed", key)
        finally:
            with self._cond:
                self._running.discard(key)
                self._cond.notify_all()

    def run_pending(self) -> int:
        """Run every task due now in this thread; returns how many ran.

        A task that reschedules itself for now is not run again in the same call.
        """
        with self._cond:
            claimed = self._claim_due(self._clock())
        for key, task in claimed:
            self._run(key, task)
        return len(claimed)

    def _start_locked(self) -> None:
        if self._background and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()
            _live.add(self)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = self._clock()
                claimed = self._claim_due(now)
                if not claimed:
                    pending = [due for key, (due, _) in self._due.items() if key not in self._running]
                    wait = min(pending) - now if pending else _IDLE_WAIT
                    self._cond.wait(timeout=max(wait, 0.001))
                    continue
            for key, task in claimed:
                if self._closed:
                    break
                self._run(key, task)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; a refresh that is running finishes first (bounded by ``timeout``)."""
        with self._cond:
            self._closed = True
            self._due.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


@atexit.register
def _close_at_exit() -> None:
    for refresher in list(_live):
        refresher.close(timeout=_EXIT_WAIT)
