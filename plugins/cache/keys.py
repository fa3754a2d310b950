"""Cache keys: short, stable, never holding the API key, never shared across accounts.

A key is ``{namespace}:{scope}:{operation}:{digest}`` where

* ``scope`` is a hash of the provider type, its base URL and a *salted*
  fingerprint of the API key, so two accounts (or two services) never share
  entries, while a fleet using one key shares them;
* ``digest`` is a hash of the scope and the normalized request (canonical
  JSON: sorted keys, no whitespace, ``None`` fields dropped).

Only hashes appear in keys, and the key's fingerprint is itself salted and
then hashed again into the scope, so nothing in Redis can be matched
against a leaked key list. The layout lets invalidation remove one
operation (``{ns}:{scope}:{op}:*``) or everything of this provider
(``{ns}:{scope}:*``) with a prefix scan.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmrelay.core.models import ChatRequest
from pydantic import BaseModel

__all__ = ["KeyBuilder", "normalize_request"]

# A public default salt still makes the fingerprint useless as a lookup
# value for unsalted key hashes published elsewhere; a fleet can set its own.
_DEFAULT_SALT = b"llmrelay.cache.key-fingerprint.v1"


# Canonical JSON: sorted keys, no whitespace. What it encodes is built fresh
# by normalize_request and never circular, so the encoder skips the reference
# markers it would otherwise keep for every container (about a fifth of the
# encoding time). A JSONEncoder keeps no per-call state: threads share one.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False).encode

# Copying a configured hash skips parsing blake2b's keyword arguments on every key.
_DIGEST = hashlib.blake2b(digest_size=16)


_TYPED_OPERATIONS = frozenset({"execute", "stream_execute", "embed"})


def _typed_request(operation: str, request: dict[str, Any]) -> BaseModel:
    if operation == "embed":
        from llmrelay.core.embeddings import EmbeddingRequest  # loaded by the first embed

        return EmbeddingRequest.model_validate(request)
    return ChatRequest.model_validate(request)


def normalize_request(request: Any) -> Any:
    """The JSON-compatible form of a request that the key is computed from."""
    if request is None:
        return None
    if isinstance(request, BaseModel):
        return request.model_dump(mode="json", exclude_none=True)
    if isinstance(request, (str, int, float, bool)):
        return request
    if isinstance(request, dict):
        return {str(k): normalize_request(v) for k, v in request.items() if v is not None}
    if isinstance(request, (list, tuple)):
        return [normalize_request(v) for v in request]
    return repr(request)


class KeyBuilder:
    """Builds keys for one provider instance."""

    __slots__ = ("namespace", "scope", "_without_request")

    def __init__(
        self,
        *,
        namespace: str,
        provider: str,
        base_url: str,
        api_key: str | None,
        salt: str | None = None,
    ) -> None:
        self.namespace = namespace
        fingerprint = ""
        if api_key:
            salt_bytes = salt.encode() if salt else _DEFAULT_SALT
            fingerprint = hashlib.blake2b(api_key.encode(), key=salt_bytes[:64], digest_size=16).hexdigest()
        scope_source = json.dumps([provider, base_url.rstrip("/"), fingerprint], separators=(",", ":"))
        self.scope = hashlib.blake2b(scope_source.encode(), digest_size=8).hexdigest()
        # Keys of calls without a request (the model list, credits) are asked for
        # on every hit: compute each once.
        self._without_request: dict[str, str] = {}

    def key(self, operation: str, request: Any = None) -> str:
        """The cache key of one call (a chat request may be given as a dict or a ChatRequest)."""
        if request is None:
            known = self._without_request.get(operation)
            if known is None:
                known = self._without_request[operation] = self._build(operation, None)
            return known
        return self._build(operation, request)

    def _build(self, operation: str, request: Any) -> str:
        if isinstance(request, dict) and operation in _TYPED_OPERATIONS:
            # The pipeline hands the layer validated models; a dict from a caller
            # asking for a key must normalize to the very same JSON.
            request = _typed_request(operation, request)
        body = _canonical([self.scope, operation, normalize_request(request)])
        digest = _DIGEST.copy()
        digest.update(body.encode())
        return f"{self.namespace}:{self.scope}:{operation}:{digest.hexdigest()}"

    def operation_prefix(self, operation: str) -> str:
        return f"{self.namespace}:{self.scope}:{operation}:"

    @property
    def scope_prefix(self) -> str:
        return f"{self.namespace}:{self.scope}:"

    def lock_name(self, key: str) -> str:
        # Locks live outside the scope prefix so invalidation never drops a held lock.
        return f"{self.namespace}:lock:{key[len(self.namespace) + 1 :]}"
