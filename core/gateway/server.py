"""``llmrelay serve``: the gateway on gunicorn's ``gthread`` worker.

``gthread`` runs each request on a thread of a pool and writes every piece a
streamed WSGI body yields straight to the socket (no buffering), so SSE
streams go out chunk by chunk; a pool of threads per worker holds many
concurrent streams while the upstream is waited on. Each worker builds its own
providers after the fork (connection pools and threads are never shared
across a fork). SIGTERM is gunicorn's graceful stop: workers stop accepting,
in-flight requests and streams get ``graceful_timeout`` seconds to finish.

With several workers and no ``redis_url`` the master makes a private
directory through which the workers share their metrics (removed at exit).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.errors import AppImportError

from ..config import RelayConfig
from ..errors import LLMRelayError
from .observability import SHARE_DIR_ENV
from .settings import GatewaySettings

__all__ = ["GatewayServer", "serve"]


class GatewayServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn, configured from :class:`GatewaySettings` rather than its command line."""

    def __init__(self, config: RelayConfig, settings: GatewaySettings, options: dict[str, Any] | None = None) -> None:
        self.relay_config = config
        self.settings = settings
        self.extra_options = options or {}
        self.app: Any = None
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        options: dict[str, Any] = {
            "bind": [f"{settings.host}:{settings.port}"],
            "workers": settings.workers,
            "worker_class": "gthread",
            "threads": settings.threads,
            "graceful_timeout": max(1, round(settings.graceful_timeout)),
            "keepalive": 5,
            "accesslog": None,  # no access log: it would hold paths and client addresses, never needed to serve
            "worker_exit": self._worker_exit,
            "proc_name": "llmrelay-gateway",
        }
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25 opens a control socket at one fixed path per user: two gateways would collide.
            options["control_socket_disable"] = True
        options.update(self.extra_options)
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Called in each worker after the fork (the app is not preloaded).
        from .app import GatewayApp
        from .backend import Backend

        try:
            self.app = GatewayApp(Backend.build(self.relay_config, self.settings), self.settings)
        except LLMRelayError as exc:
            # What the master's check (Backend.check) could not see, such as a plugin's missing optional
            # dependency: gunicorn prints an AppImportError as one line and stops, where any other error
            # would be logged with its traceback.
            raise AppImportError(f"llmrelay: error: {exc}") from None
        return self.app

    def _worker_exit(self, server: Any, worker: Any) -> None:
        if self.app is not None:
            self.app.close()


def serve(config: RelayConfig, settings: GatewaySettings, options: dict[str, Any] | None = None) -> None:
    """Run the gateway until it is stopped (SIGTERM / SIGINT)."""
    share_dir = None
    master = os.getpid()
    if settings.workers > 1 and not settings.redis_url and not os.environ.get(SHARE_DIR_ENV):
        share_dir = tempfile.mkdtemp(prefix="llmrelay-gateway-")
        os.environ[SHARE_DIR_ENV] = share_dir
    try:
        GatewayServer(config, settings, options).run()
    finally:
        # A worker is a fork of this very call: its exit unwinds through here too, and must not take the
        # directory from the master and the other workers (one worker restarted would end the sharing).
        if share_dir is not None and os.getpid() == master:
            shutil.rmtree(share_dir, ignore_errors=True)
            os.environ.pop(SHARE_DIR_ENV, None)
