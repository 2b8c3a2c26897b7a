"""A fake token issuer for resource-server tests: a test RSA key, forged JWTs, and a real JWKS
server on 127.0.0.1 that counts its requests (OIDC discovery + JWKS)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

POOL = "us-east-1_Test00001"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestIssuer:
    """Signs Cognito-shaped access tokens with ``key`` (kid ``kid``) for ``issuer``."""

    __test__ = False  # not a pytest class

    def __init__(self, issuer: str, key: RSAKey, kid: str = "test-kid-1") -> None:
        self.issuer = issuer
        self.key = key
        self.kid = kid

    def claims(self, resource: str, **overrides: Any) -> dict[str, Any]:
        """Cognito access-token claims for ``resource`` (scope ``<resource>/tools``)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": "0f1e2d3c-demo-user",
            "iss": self.issuer,
            "client_id": "demo-broker",
            "token_use": "access",
            "scope": f"{resource}/tools",
            "auth_time": now,
            "exp": now + 600,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "username": "demo",
            "cognito:groups": ["demo-users"],
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self, claims: dict[str, Any], kid: str | None = None, key: RSAKey | None = None
    ) -> str:
        header = {"alg": "RS256", "kid": kid or self.kid}
        return jwt.encode(header, claims, key or self.key, algorithms=["RS256"])

    def token(self, resource: str, **overrides: Any) -> str:
        return self.sign(self.claims(resource, **overrides))

    def unsigned(self, claims: dict[str, Any]) -> str:
        """``alg: none`` (RFC 7519 §6): header.payload. with an empty signature."""
        header = {"alg": "none", "kid": self.kid, "typ": "JWT"}
        return ".".join(
            [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), ""]
        )

    def hs256_with_public_key(self, claims: dict[str, Any]) -> str:
        """The key-confusion forgery: HS256 with the RSA public key (PEM) as the HMAC secret."""
        header = {"alg": "HS256", "kid": self.kid, "typ": "JWT"}
        signing_input = ".".join(
            [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode())]
        )
        secret = self.key.as_pem(private=False)
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [public]}


class JwksServer:
    """Serves ``/<pool>/.well-known/openid-configuration`` and ``/<pool>/jwks.json``, loopback."""

    def __init__(self, key: RSAKey | None = None, kid: str = "test-kid-1") -> None:
        self.requests: Counter[str] = Counter()
        self.discovery_overrides: dict[str, Any] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.issuer = f"{self.base}/{POOL}"
        self.jwks_url = f"{self.issuer}/jwks.json"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.issuer_obj = TestIssuer(self.issuer, key or signing_key(0), kid)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def jwks_requests(self) -> int:
        return self.requests[f"/{POOL}/jwks.json"]

    @property
    def discovery_requests(self) -> int:
        return self.requests[f"/{POOL}/.well-known/openid-configuration"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests[self.path] += 1
                if self.path == f"/{POOL}/jwks.json":
                    self._json(server.issuer_obj.jwks())
                elif self.path == f"/{POOL}/.well-known/openid-configuration":
                    document = {"issuer": server.issuer, "jwks_uri": server.jwks_url}
                    self._json({**document, **server.discovery_overrides})
                else:
                    self.send_error(404)

            def _json(self, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@functools.cache
def signing_key(index: int = 0) -> RSAKey:
    """RSA test key number ``index`` (generated once per test run: key generation is slow)."""
    return RSAKey.generate_key(2048)


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    """A JWKS server on 127.0.0.1 with its signing issuer, shared by one test module."""
    with JwksServer() as server:
        yield server
