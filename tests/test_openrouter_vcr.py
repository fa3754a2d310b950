"""The provider records and replays under vcrpy (which swaps urllib3's response for its own stub)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from llmrelay.providers.openrouter import OpenRouterProvider

from tests.support.fake_server import VALID_KEY, FakeOpenRouter

vcr = pytest.importorskip("vcr")

HI = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
SAMPLES = Path(__file__).parent / "data" / "openrouter_samples"


def test_record_then_replay_offline(tmp_path: Path) -> None:
    cassette = str(tmp_path / "openrouter.yaml")
    options = {"match_on": ["method", "uri", "body"], "filter_headers": ["authorization"]}
    with FakeOpenRouter() as server:
        base = server.base_url
        with (
            vcr.use_cassette(cassette, record_mode="once", **options),
            OpenRouterProvider(api_key=VALID_KEY, base_url=base) as provider,
        ):
            recorded = (
                provider.execute(HI).text,
                provider.stream_execute(HI).final_response().text,
                provider.list_models().ids,
            )
    text = Path(cassette).read_text()
    assert VALID_KEY not in text
    # The server is gone: everything below comes from the cassette.
    with (
        vcr.use_cassette(cassette, record_mode="none", **options),
        OpenRouterProvider(api_key=VALID_KEY, base_url=base) as provider,
    ):
        replayed = (
            provider.execute(HI).text,
            provider.stream_execute(HI).final_response().text,
            provider.list_models().ids,
        )
    assert replayed == recorded and recorded[1] == "word0 word1 word2 word3 word4"


def test_replayed_gzip_body_is_decoded(tmp_path: Path) -> None:
    # Older cassettes (the 2024 / 2025-04 OpenRouter recordings) keep /models gzipped.
    payload = json.loads((SAMPLES / "models_2025.json").read_text())
    cassette = {
        "version": 1,
        "interactions": [
            {
                "request": {"body": None, "headers": {}, "method": "GET", "uri": "https://openrouter.ai/api/v1/models"},
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"Content-Type": ["application/json"], "Content-Encoding": ["gzip"]},
                    "body": {"string": gzip.compress(json.dumps(payload).encode())},
                },
            }
        ],
    }
    import yaml

    path = tmp_path / "gz.yaml"
    path.write_text(yaml.dump(cassette))
    with vcr.use_cassette(str(path), record_mode="none"):
        models = OpenRouterProvider(api_key=VALID_KEY).list_models()
    assert len(models) == len(payload["data"])
