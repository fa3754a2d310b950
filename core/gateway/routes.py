"""The gateway's endpoints: each one parses, calls the provider pipeline once, and renders.

The time inside the provider call is added to ``request.upstream`` so the
overhead header leaves it out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError
from . import anthropic_ingress as anthropic
from . import openai_ingress as openai
from .exchange import ANTHROPIC, OPENAI, SSE, Request, Response, json_response
from .pump import Pump

if TYPE_CHECKING:  # the app installs these routes (GatewayApp.__init__): they only call back into it
    from .app import GatewayApp

__all__ = ["install"]

_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def install(app: GatewayApp) -> None:
    for path in ("/v1/chat/completions", "/chat/completions"):
        app.route("POST", path, chat_completions, OPENAI)
    app.route("POST", "/v1/messages", messages, ANTHROPIC)
    app.route("POST", "/v1/messages/count_tokens", count_tokens, ANTHROPIC)
    for path in ("/v1/models", "/models"):
        app.route("GET", path, models, OPENAI)
    for path in ("/v1/embeddings", "/embeddings"):
        app.route("POST", path, embeddings, OPENAI)
    app.route("GET", "/healthz", healthz, OPENAI, auth=False)
    app.route("GET", "/metrics", metrics, OPENAI, auth=not app.settings.metrics_public)
    app.route("GET", "/api/performance", performance, OPENAI)


def chat_completions(app: GatewayApp, request: Request) -> Response:
    chat, stream, include_usage = openai.chat_request(request.json(app.settings.max_body_bytes))
    model = chat.get("model")
    provider = app.backend.provider
    started = app.clock()
    if stream:
        upstream = provider.stream_execute(chat)
        request.upstream += app.clock() - started
        frames = openai.sse_chunks(upstream, model, include_usage)
        body = Pump(
            frames,
            upstream.close,
            ping=lambda: openai.PING,
            ping_interval=app.settings.ping_interval,
            client=request.client_socket,
        )
        return Response(200, body, SSE)
    response = provider.execute(chat)
    request.upstream += app.clock() - started
    return json_response(200, openai.completion_body(response, model))


def messages(app: GatewayApp, request: Request) -> Response:
    chat, stream = anthropic.messages_request(request.json(app.settings.max_body_bytes))
    model = chat.get("model")
    provider = app.backend.provider
    started = app.clock()
    if stream:
        upstream = provider.stream_execute(chat)
        request.upstream += app.clock() - started
        events = anthropic.MessageEvents(upstream, model)
        body = Pump(
            iter(events),
            upstream.close,
            ping=events.ping,
            ping_interval=app.settings.ping_interval,
            client=request.client_socket,
        )
        return Response(200, body, SSE)
    response = provider.execute(chat)
    request.upstream += app.clock() - started
    return json_response(200, anthropic.message_body(response, model))


def count_tokens(app: GatewayApp, request: Request) -> Response:
    chat, _stream = anthropic.messages_request(request.json(app.settings.max_body_bytes))
    return json_response(200, {"input_tokens": anthropic.count_tokens(chat)})


def models(app: GatewayApp, request: Request) -> Response:
    started = app.clock()
    listing = app.backend.provider.list_models()
    request.upstream += app.clock() - started
    if request.header("anthropic-version"):
        data = [
            {"type": "model", "id": m.id, "display_name": m.name or m.id, "created_at": "1970-01-01T00:00:00Z"}
            for m in listing
        ]
        first = data[0]["id"] if data else None
        last = data[-1]["id"] if data else None
        return json_response(200, {"data": data, "has_more": False, "first_id": first, "last_id": last})
    return json_response(200, openai.models_body(listing))


def embeddings(app: GatewayApp, request: Request) -> Response:
    body = request.json(app.settings.max_body_bytes)
    if not isinstance(body, dict) or "input" not in body:
        raise BadRequestError("an embeddings request needs input (a string or a list of strings)")
    provider, model = app.backend.for_model(body.get("model"))
    embed: dict[str, Any] = {key: value for key, value in body.items() if key != "encoding_format"}
    embed["model"] = model
    started = app.clock()
    response = provider.embed(embed)
    request.upstream += app.clock() - started
    return json_response(200, openai.embeddings_body(response, body.get("model")))


def healthz(app: GatewayApp, request: Request) -> Response:
    return json_response(200, {"status": "ok", "providers": sorted(app.backend.members)})


def metrics(app: GatewayApp, request: Request) -> Response:
    return Response(200, app.observer.prometheus().encode(), _PROMETHEUS)


def performance(app: GatewayApp, request: Request) -> Response:
    reset = "action=reset" in request.query.split("&")
    return json_response(200, app.observer.performance(reset=reset))
