"""How a token set and a client secret are written as text for the keyring, and read back.

Documents are ASCII JSON (``ensure_ascii``), so one character is one UTF-16 unit on Windows. A
document names the key it belongs to; reading it back under another key is refused (#50).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from broker.tokens.tokenset import TokenKey, TokenSet

FORMAT_VERSION = 1


class CorruptEntry(ValueError):
    """Stored data that cannot be trusted. The message names the problem, never a value."""


def entry_id(*parts: str) -> str:
    """A stable, collision-resistant id for a tuple of strings (unambiguous JSON encoding)."""
    encoded = json.dumps(list(parts), ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()[:40]


def token_entry_name(key: TokenKey) -> str:
    return "token:" + entry_id("token", key.issuer, key.client_id, key.resource)


def client_secret_entry_name(issuer: str, client_id: str) -> str:
    return "client-secret:" + entry_id("client-secret", issuer, client_id)


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def encode_tokens(tokens: TokenSet) -> str:
    return dumps(
        {
            "v": FORMAT_VERSION,
            "issuer": tokens.key.issuer,
            "client_id": tokens.key.client_id,
            "resource": tokens.key.resource,
            "access_token": tokens.access_token,
            "expires_at": tokens.expires_at,
            "token_type": tokens.token_type,
            "scope": tokens.scope,
            "refresh_token": tokens.refresh_token,
            "obtained_at": tokens.obtained_at,
            "user": tokens.user,
            "id_token": tokens.id_token,
            "grant": tokens.grant,
            "dpop_key": tokens.dpop_key,
        }
    )


def decode_tokens(text: str, key: TokenKey) -> TokenSet:
    doc = _load_object(text)
    if (doc.get("issuer"), doc.get("client_id"), doc.get("resource")) != (
        key.issuer,
        key.client_id,
        key.resource,
    ):
        raise CorruptEntry("entry belongs to another issuer, client or resource")
    access_token = _field(doc, "access_token", str)
    if not access_token:
        raise CorruptEntry("empty access token")
    return TokenSet(
        key=key,
        access_token=access_token,
        expires_at=_number(doc, "expires_at"),
        token_type=_field(doc, "token_type", str),
        scope=_optional(doc, "scope"),
        refresh_token=_optional(doc, "refresh_token"),
        obtained_at=_number(doc, "obtained_at"),
        user=_optional(doc, "user"),  # absent in entries written before it existed
        id_token=_optional(doc, "id_token"),  # the same
        grant=_optional(doc, "grant"),  # the same
        dpop_key=_optional(doc, "dpop_key"),  # the same
    )


def encode_client_secret(issuer: str, client_id: str, secret: str) -> str:
    return dumps({"v": FORMAT_VERSION, "issuer": issuer, "client_id": client_id, "secret": secret})


def decode_client_secret(text: str, issuer: str, client_id: str) -> str:
    doc = _load_object(text)
    if (doc.get("issuer"), doc.get("client_id")) != (issuer, client_id):
        raise CorruptEntry("entry belongs to another issuer or client")
    return _field(doc, "secret", str)


def _load_object(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise CorruptEntry("not JSON") from None  # the text may hold a token: never chain it
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION:
        raise CorruptEntry("unknown format")
    return doc


def _field(doc: dict[str, Any], name: str, kind: type[str]) -> str:
    value = doc.get(name)
    if not isinstance(value, kind):
        raise CorruptEntry(f"field {name!r} missing or of the wrong type")
    return value


def _optional(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise CorruptEntry(f"field {name!r} of the wrong type")
    return value


def _number(doc: dict[str, Any], name: str) -> float:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CorruptEntry(f"field {name!r} is not a finite number")
    return float(value)
