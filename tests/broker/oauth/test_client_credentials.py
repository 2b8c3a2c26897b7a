"""Machine identities: the client_credentials token request (RFC 6749 §4.4.2) and client
authentication: client_secret_basic / client_secret_post (RFC 6749 §2.3.1) and private_key_jwt
(RFC 7523 §2.2)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from urllib.parse import parse_qs, unquote_plus

import httpx2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt
from joserfc.jwk import import_key

from broker.errors import ConfigError
from broker.oauth.as_metadata import AuthServer
from broker.oauth.client_assertion import ASSERTION_TYPE, LIFETIME, signing_alg
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials, client_authentication
from broker.oauth.token_request import build_client_credentials_request, handle_token_response
from broker.tokens.tokenset import TokenKey

ISSUER = "https://as.example.com/tenant"
SERVER = AuthServer(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", GENERIC)
RESOURCE = "https://mcp.example.com/mcp"
SECRET = "canary-secret p@ss:w%rd+/&="


def form(request: httpx2.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


def pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_request_fields_with_scope_and_resource() -> None:
    client = ClientCredentials("m2m", ISSUER, client_secret="s")
    request = build_client_credentials_request(SERVER, client, "mcp/tools mcp/read", RESOURCE)
    assert request.method == "POST"
    assert str(request.url) == f"{ISSUER}/token"
    assert form(request) == {
        "grant_type": ["client_credentials"],
        "scope": ["mcp/tools mcp/read"],
        "resource": [RESOURCE],
    }


def test_basic_form_encodes_id_and_secret_before_base64() -> None:
    client = ClientCredentials("machine id:1", ISSUER, client_secret=SECRET)
    request = build_client_credentials_request(SERVER, client, None, None)
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    pair = base64.b64decode(encoded).decode()
    user, _, password = pair.partition(":")
    assert ":" not in password and " " not in pair
    assert (unquote_plus(user), unquote_plus(password)) == ("machine id:1", SECRET)
    assert SECRET not in request.content.decode()
    assert form(request) == {"grant_type": ["client_credentials"]}


def test_post_when_the_as_takes_only_client_secret_post() -> None:
    server = replace(SERVER, token_endpoint_auth_methods_supported=("client_secret_post",))
    client = ClientCredentials("m2m", ISSUER, client_secret=SECRET)
    request = build_client_credentials_request(server, client, None, None)
    assert "authorization" not in request.headers
    assert form(request)["client_id"] == ["m2m"]
    assert form(request)["client_secret"] == [SECRET]


def test_basic_when_the_as_lists_both() -> None:
    server = replace(
        SERVER, token_endpoint_auth_methods_supported=("client_secret_post", "client_secret_basic")
    )
    client = ClientCredentials("m2m", ISSUER, client_secret=SECRET)
    assert client_authentication(server, client)[0]["Authorization"].startswith("Basic ")


def test_a_machine_client_has_no_refresh_token() -> None:
    key = TokenKey(RESOURCE, ISSUER, "m2m")
    body = {"access_token": "a", "token_type": "Bearer", "expires_in": 3600}
    tokens = handle_token_response(
        httpx2.Response(200, content=json.dumps(body).encode()), key, "mcp/tools", now=1000.0
    )
    assert tokens.refresh_token is None
    assert tokens.scope == "mcp/tools"


KEYS = {
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "RS256": lambda: rsa.generate_private_key(65537, 2048),
}

TYPES = {"ES256": "EC", "ES384": "EC", "RS256": "RSA"}


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_private_key_jwt_assertion(alg: str) -> None:
    private = KEYS[alg]()
    client = ClientCredentials("m2m-client", ISSUER, private_key=pem(private))
    headers, fields = client_authentication(SERVER, client, now=1_800_000_000)
    assert headers == {}
    assert fields["client_id"] == "m2m-client"
    assert fields["client_assertion_type"] == ASSERTION_TYPE
    public = import_key(pem_public(private), TYPES[alg])  # type: ignore[call-overload]
    token = jwt.decode(fields["client_assertion"], public, algorithms=[alg])
    assert token.header["alg"] == alg
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "m2m-client"
    assert claims["aud"] == ISSUER  # the issuer identifier, as one string (RFC 7523bis)
    assert claims["iat"] == 1_800_000_000
    assert claims["exp"] == 1_800_000_000 + LIFETIME
    assert len(claims["jti"]) >= 32
    again = client_authentication(SERVER, client, now=1_800_000_000)[1]["client_assertion"]
    assert jwt.decode(again, public, algorithms=[alg]).claims["jti"] != claims["jti"]


def pem_public(private: object) -> str:
    return (
        private.public_key()
        .public_bytes(  # type: ignore[attr-defined, no-any-return]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )


def test_private_key_jwt_through_the_token_request() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    client = ClientCredentials("m2m", ISSUER, private_key=pem(private))
    request = build_client_credentials_request(SERVER, client, "s", RESOURCE)
    fields = form(request)
    assert fields["grant_type"] == ["client_credentials"]
    assert fields["client_assertion_type"] == [ASSERTION_TYPE]
    assert "authorization" not in request.headers
    assert "BEGIN" not in request.content.decode()
    assert "private_key" not in repr(client) and "BEGIN" not in repr(client)


def test_algorithm_follows_the_as_list() -> None:
    rsa_key = pem(rsa.generate_private_key(65537, 2048))
    assert signing_alg(rsa_key, ("PS256",)) == "PS256"
    assert signing_alg(rsa_key, None) == "RS256"
    with pytest.raises(ConfigError, match="ES256"):
        signing_alg(rsa_key, ("ES256",))


def test_ed25519_keys_are_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="RSA or EC"):
        signing_alg(pem(ed25519.Ed25519PrivateKey.generate()))


def test_unreadable_key_is_refused_without_repeating_it() -> None:
    bogus = "-----BEGIN PRIVATE KEY-----\ncanaryKEYmaterial\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError) as caught:
        signing_alg(bogus)
    assert "canaryKEYmaterial" not in str(caught.value)
