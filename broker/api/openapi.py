"""The OpenAPI 3.1 document of the local token API, served at ``GET /v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from broker.api.body import MAX_MIN_VALID, MAX_RESOURCE_CHARS, MAX_SCOPE_CHARS


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_BROKER_HEADER = {
    "name": "X-MCP-Broker",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "enum": ["1"]},
    "description": "Required on every request; a browser cannot send it without a preflight.",
}

_COMMON_ERRORS = {
    "400": _error("Malformed request, or a query string"),
    "403": _error("Browser or relayed request, wrong Host, missing X-MCP-Broker header"),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "error_description"],
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    },
    "TokenRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["resource"],
        "properties": {
            "resource": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_RESOURCE_CHARS,
                "description": "The MCP server URL, canonicalised (RFC 8707): lowercase scheme "
                "and host, no default port, no fragment, no trailing slash.",
            },
            "scope": {"type": "string", "maxLength": MAX_SCOPE_CHARS},
            "min_valid_seconds": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_MIN_VALID,
                "description": "Seconds the token must stay valid (default 60). Capped at a "
                "tenth of the token's lifetime, which every token has until its background "
                "refresh is due; while the authorization server is slow or down, a token valid "
                "beyond the safety margin (5% of its lifetime, at most 30 s) is served instead.",
            },
        },
    },
    "TokenResponse": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "expires_at", "resource"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"},
            "expires_at": {"type": "integer", "description": "Unix time"},
            "scope": {"type": ["string", "null"]},
            "resource": {"type": "string"},
        },
    },
    "Status": {
        "type": "object",
        "properties": {
            "servers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string"},
                        "state": {"type": "string"},
                        "name": {
                            "type": ["string", "null"],
                            "description": "the server's own name (its PRM resource_name)",
                        },
                        "user": {"type": ["string", "null"], "description": "who signed in"},
                        "machine": {
                            "type": "boolean",
                            "description": "a machine identity: client_id is who, no user",
                        },
                        "dpop_bound": {
                            "type": "boolean",
                            "description": "the tokens are DPoP-bound (RFC 9449): /v1/token "
                            "refuses them (403 dpop_bound); only the broker's bridge can use them",
                        },
                        "client_id": {"type": ["string", "null"]},
                        "expires_at": {"type": ["number", "null"]},
                        "expires_in": {"type": ["integer", "null"]},
                    },
                },
            }
        },
    },
}


def openapi_document(port: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mcp-oauth-broker local token API",
            "version": "1",
            "description": "Served on 127.0.0.1 only. Discovery: endpoint.json in the broker's "
            "state dir (url, pid, the default client's secret).",
        },
        "servers": [{"url": f"http://127.0.0.1:{port}"}],
        "components": {
            "securitySchemes": {"clientSecret": {"type": "http", "scheme": "bearer"}},
            "schemas": _SCHEMAS,
        },
        "paths": {
            "/v1/token": {
                "post": {
                    "summary": "A current access token for a configured MCP server",
                    "security": [{"clientSecret": []}],
                    "parameters": [_BROKER_HEADER],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/TokenRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The access token (for a server added with --send "
                            "id-token, its ID token instead; never a refresh token)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/TokenResponse"}
                                }
                            },
                        },
                        **_COMMON_ERRORS,
                        "401": _error("No or a wrong client secret"),
                        "403": _error(
                            "access_denied / consent_required / insufficient_scope / "
                            "dpop_bound (the server's tokens are DPoP-bound: use the bridge, "
                            "mcp-broker connect URL), or a refused request shape"
                        ),
                        "404": _error("invalid_target: not a configured server"),
                        "409": _error("interaction_required: the user must sign in"),
                        "413": _error("Body over 64 KiB"),
                        "415": _error("Body not application/json"),
                        "503": _error("temporarily_unavailable: retry after Retry-After"),
                    },
                }
            },
            "/v1/status": {
                "get": {
                    "summary": "Configured servers and their sign-in state (no tokens)",
                    "security": [{"clientSecret": []}],
                    "parameters": [_BROKER_HEADER],
                    "responses": {
                        "200": {
                            "description": "Servers",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Status"}
                                }
                            },
                        },
                        **_COMMON_ERRORS,
                        "401": _error("No or a wrong client secret"),
                        "503": _error("temporarily_unavailable"),
                    },
                }
            },
            "/v1/hello": {
                "get": {
                    "summary": "Proof that the server knows a client's secret, before it is sent",
                    "parameters": [
                        _BROKER_HEADER,
                        {
                            "name": "X-MCP-Broker-Nonce",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}$"},
                        },
                        {
                            "name": "X-MCP-Broker-Client",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "proof = base64url(HMAC-SHA256(SHA-256(secret), "
                            '"mcp-broker hello v1|" + port + "|" + nonce))',
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/v1/ui/launch": {
                "post": {
                    "summary": "A single-use link to the control page, written into a private "
                    "file (mcp-broker open); served while the broker runs its control page",
                    "description": "For the default client only. The broker writes a fresh "
                    "launch link into a file of its own in its state dir (control-page-ID.html, "
                    "0600) and answers that file's file:// URL, never the link: hand it to the "
                    "browser. The link works once, within 60 s. "
                    'Body: {} or {"page": "/ui/clients"}.',
                    "security": [{"clientSecret": []}],
                    "parameters": [_BROKER_HEADER],
                    "responses": {
                        "200": {
                            "description": '{"file": "file:///…/control-page-ID.html"}',
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_COMMON_ERRORS,
                        "401": _error("No or a wrong client secret"),
                        "403": _error("A named client: only the default client opens the page"),
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "parameters": [_BROKER_HEADER],
                    "responses": {"200": {"description": "OpenAPI 3.1"}, **_COMMON_ERRORS},
                }
            },
        },
    }
