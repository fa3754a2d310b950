"""The gateway's WSGI app for granian, so ``bench_gateway.py --granian`` can set the two servers side by side.

``llmrelay serve`` runs on gunicorn (core/gateway/server.py); this factory
exists only for the comparison: granian builds the app in each worker from
the config file that ``LLMRELAY_CONFIG`` names.
"""

from __future__ import annotations

import os

from llmrelay.core.config import load_config
from llmrelay.core.gateway.app import GatewayApp
from llmrelay.core.gateway.backend import Backend
from llmrelay.core.gateway.settings import gateway_settings


def make_app() -> GatewayApp:
    config = load_config(os.environ["LLMRELAY_CONFIG"])
    settings = gateway_settings(config)
    return GatewayApp(Backend.build(config, settings), settings)
