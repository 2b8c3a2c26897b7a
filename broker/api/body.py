"""The ``POST /v1/token`` body, parsed strictly (SECURITY #19, #20).

``{"resource": URL, "scope"?: "a b", "min_valid_seconds"?: N}`` and nothing else: unknown or
duplicate fields, wrong types, NaN, booleans for numbers, a ``min_valid_seconds`` outside
0..86400 are all 400. The resource is canonicalised by the one rule in
:func:`broker.oauth.resource.canonical_resource` (lowercase scheme and host, no default port, no
fragment, no trailing slash) or refused; the API only ever looks tokens up by that canonical form.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from broker.errors import ConfigError, InvalidRequest
from broker.oauth.resource import canonical_resource

MAX_MIN_VALID = 86400
MAX_RESOURCE_CHARS = 2048
MAX_SCOPE_CHARS = 1024
_FIELDS = frozenset({"resource", "scope", "min_valid_seconds"})


@dataclass(frozen=True)
class TokenRequest:
    resource: str
    scope: frozenset[str] | None = None
    min_valid: float | None = None


def parse_token_request(raw: bytes) -> TokenRequest:
    doc = _json_object(raw)
    unknown = set(doc) - _FIELDS
    if unknown:
        raise InvalidRequest("unknown fields: " + ", ".join(sorted(_printable(k) for k in unknown)))
    return TokenRequest(
        resource=_resource(doc.get("resource")),
        scope=_scope(doc.get("scope")),
        min_valid=_min_valid(doc.get("min_valid_seconds")),
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        doc = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise InvalidRequest("the body is not valid UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("the body must be a JSON object")
    return doc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("duplicate field")
    return doc


def _bad(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _resource(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_RESOURCE_CHARS:
        raise InvalidRequest("resource must be the MCP server URL (a non-empty string)")
    if not value.isprintable() or value != value.strip():
        raise InvalidRequest("resource must not contain control characters or spaces")
    try:
        return _canonical(value)
    except (ConfigError, ValueError):
        raise InvalidRequest("resource must be an http(s) URL without user info") from None


@functools.lru_cache(maxsize=256)
def _canonical(url: str) -> str:
    return canonical_resource(url)


def _scope(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_SCOPE_CHARS:
        raise InvalidRequest("scope must be a string of space-separated scopes")
    names = value.split(" ")
    # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    if any(not n or any(c in '"\\' or not "!" <= c <= "~" for c in n) for n in names):
        raise InvalidRequest("scope must be space-separated scope tokens (RFC 6749 §3.3)")
    return frozenset(names)


def _min_valid(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidRequest("min_valid_seconds must be a number")
    if not 0 <= value <= MAX_MIN_VALID:
        raise InvalidRequest(f"min_valid_seconds must be between 0 and {MAX_MIN_VALID}")
    return float(value)


# One decoder for every request (json.loads with options builds a new one per call).
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_bad)


def _printable(text: str) -> str:
    return json.dumps(text[:64])
