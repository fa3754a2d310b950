"""The thread pool the async API runs on: llmrelay's one sync pipeline, awaited without blocking an event loop.

Every ``a*`` method of a provider (``aexecute``, ``astream_execute``,
``alist_models``, ...) calls the sync method of the same object on a worker
of one process-wide :class:`~concurrent.futures.ThreadPoolExecutor`, through
:func:`run_sync`. The call therefore passes through the same layers (metrics,
cache, breaker), the same retry policy and the same connection pool as a
sync one, and a stream is the same :class:`~llmrelay.core.stream.ChatStream`
read a chunk per job (:mod:`llmrelay.core.async_stream`).

Why threads rather than an async HTTP client: the layers are thread-safe
sync code (the cache's single-flight, the breaker's state, the metrics), and
an async transport would need a second implementation of each, and of every
provider, kept in step. A hop to the pool costs tens of microseconds
(``bench/bench_async.py``), against milliseconds for any HTTP call.

**Size.** At most :data:`DEFAULT_WORKERS` threads, 32 (a provider's default
connection pool size: one connection per call in flight), unless the environment variable
``LLMRELAY_ASYNC_WORKERS`` says otherwise when the pool starts, or
:func:`set_async_workers` changes it. The size bounds how many llmrelay
calls run at once in the process, across all event loops; further calls wait
in the pool's queue. Threads start on demand, up to the size, and are reused.

**Threads end cleanly.** The workers are not daemon threads: at interpreter
exit ``concurrent.futures`` lets each finish the job it is running and joins
it. :func:`shutdown_async_pool` stops them earlier (a later call starts a
fresh pool).

**Cancellation.** Cancelling the awaiting task (``task.cancel()``,
``asyncio.wait_for``, ``asyncio.timeout``) returns control at once. A job not
started yet is dropped; a running sync call cannot be interrupted from
outside, so it finishes on its worker (bounded by the provider's timeouts
and retry policy) and its result is discarded, or handed to ``on_abandon``.
Streams do better: a cancelled read closes the stream, which aborts the
read and closes the upstream connection at once.

Context variables are copied into the worker, as ``asyncio.to_thread`` does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from .errors import ConfigurationError

__all__ = [
    "DEFAULT_WORKERS",
    "THREAD_NAME_PREFIX",
    "WORKERS_ENV",
    "async_workers",
    "run_sync",
    "set_async_workers",
    "shutdown_async_pool",
]

T = TypeVar("T")

log = logging.getLogger("llmrelay.aio")

#: The pool's size unless configured: a provider's connection pool size (``pool.maxsize``).
#: Not asyncio's ``cpu_count() + 4``: these threads wait on the network for seconds
#: per call, so CPUs do not bound them; 6 threads on a 2-CPU machine would cap an
#: agent backend at 6 concurrent LLM calls.
DEFAULT_WORKERS = 32
#: The environment variable read for the size when the pool starts.
WORKERS_ENV = "LLMRELAY_ASYNC_WORKERS"
#: The names of the worker threads start with it (``llmrelay-async_0``).
THREAD_NAME_PREFIX = "llmrelay-async"

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0  # the running pool's size, as it was built
_workers: int | None = None  # set by set_async_workers; None: the environment or the default


def _checked(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{source}: the async thread pool's size must be a whole number of at least 1, got {value!r}"
        )
    return value


def _configured_workers() -> int:
    if _workers is not None:
        return _workers
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return DEFAULT_WORKERS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(
            f"environment variable {WORKERS_ENV}: expected a whole number of threads of at least 1 "
            f"(the async thread pool's size, default {DEFAULT_WORKERS}), got {raw!r}"
        )
    return value


def async_workers() -> int:
    """The size of the pool: of the running one, or of the one the next async call starts."""
    with _lock:
        return _pool_size if _pool is not None else _configured_workers()


def set_async_workers(workers: int | None) -> None:
    """Size the pool at ``workers`` threads (``None``: back to ``LLMRELAY_ASYNC_WORKERS`` or the default).

    A running pool is replaced: later calls go to a new pool, and the old one
    finishes the jobs it has, then its threads end (this does not wait for them).
    """
    global _pool, _workers
    checked = None if workers is None else _checked(workers, "set_async_workers()")
    with _lock:
        _workers = checked
        old, _pool = _pool, None
    if old is not None:
        old.shutdown(wait=False)


def shutdown_async_pool(*, wait: bool = True) -> None:
    """Stop the pool's threads: jobs already queued run first; ``wait`` waits for them.

    For a program that wants its threads gone before it exits (interpreter
    exit joins them anyway), and for tests. A later async call starts a new pool.
    """
    global _pool
    with _lock:
        old, _pool = _pool, None
    if old is not None:
        old.shutdown(wait=wait)


def _current_pool() -> ThreadPoolExecutor:
    global _pool, _pool_size
    pool = _pool
    if pool is not None:
        return pool
    with _lock:
        if _pool is None:
            _pool_size = _configured_workers()
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix=THREAD_NAME_PREFIX)
        return _pool


def _submit(job: Callable[[], T]) -> Future[T]:
    pool = _current_pool()
    try:
        return pool.submit(job)
    except RuntimeError:
        if _pool is pool:
            raise  # not replaced: the interpreter is shutting down
        # Replaced or shut down between reading it and submitting: the current one takes it.
        return _current_pool().submit(job)


async def run_sync(call: Callable[[], T], *, on_abandon: Callable[[T], object] | None = None) -> T:
    """Run ``call()`` on the pool, in a copy of the caller's context, and return (or raise) what it did.

    If the awaiting task is cancelled while ``call`` runs, ``on_abandon``
    receives its result when it comes (on the worker, or at once if it came
    already): the place to release what nobody will read, such as a stream
    that opened after its caller left.
    """
    context = contextvars.copy_context()
    future = _submit(functools.partial(context.run, call))
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if on_abandon is not None:
            future.add_done_callback(functools.partial(_hand_over, on_abandon))
        raise


def _hand_over(on_abandon: Callable[[T], object], future: Future[T]) -> None:
    if future.cancelled() or future.exception() is not None:
        return  # never started, or failed: nothing to release
    try:
        on_abandon(future.result())
    except Exception:  # a worker's done callback: log, never raise into concurrent.futures
        log.exception("llmrelay: releasing the result of a cancelled async call failed")
