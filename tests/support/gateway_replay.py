"""``python -m tests.support.gateway_replay CASSETTE CONFIG``: the gateway with its upstream traffic replayed.

Like ``llmrelay --cassette CASSETTE serve``, but leaving ``usage`` out of body
matching, as llmrelay's own replay tests do (llmrelay always sends
``usage: {"include": true}`` to OpenRouter; most recorders did not). The
gunicorn workers fork inside the cassette, so their requests are replayed.
"""

from __future__ import annotations

import sys

from llmrelay.core.cli.cassettes import use_cassette
from llmrelay.core.config import load_config
from llmrelay.core.gateway.server import serve
from llmrelay.core.gateway.settings import gateway_settings


def main(cassette: str, config_path: str) -> None:
    config = load_config(config_path)
    with use_cassette(cassette, "none", ignore_body_fields=("usage",)):
        serve(config, gateway_settings(config))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
