from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import httpx2
import pytest

from broker.errors import ClientRegistrationRequired, RegistrationFailed
from broker.oauth.as_metadata import AuthServer
from broker.oauth.providers import GENERIC
from broker.oauth.registration import (
    ClientCredentials,
    Registration,
    build_registration_request,
    choose_registration,
    client_authentication,
    handle_registration_response,
    metadata_document_client,
    token_auth_method,
)

ISSUER = "https://auth.example.com"
CIMD = "https://broker.example.com/client-metadata.json"
REDIRECT = "http://127.0.0.1:53682/callback"
SERVER = AuthServer(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/authorize",
    token_endpoint=f"{ISSUER}/token",
    registration_endpoint=f"{ISSUER}/register",
    profile=GENERIC,
)
PRE = ClientCredentials("pre-id", ISSUER, "pre-secret")


def test_pre_registered_client_for_this_issuer_comes_first() -> None:
    server = replace(SERVER, client_id_metadata_document_supported=True)
    assert choose_registration(server, PRE, CIMD) is Registration.PREREGISTERED


def test_pre_registered_client_of_another_issuer_is_never_used() -> None:
    other = ClientCredentials("pre-id", "https://other.example.com", "s")
    assert choose_registration(SERVER, other, None) is Registration.DCR


def test_client_id_metadata_document_when_supported() -> None:
    server = replace(SERVER, client_id_metadata_document_supported=True)
    assert choose_registration(server, None, CIMD) is Registration.CIMD
    assert choose_registration(server, None, "http://broker.example.com/x") is Registration.DCR
    assert choose_registration(server, None, "https://broker.example.com/") is Registration.DCR
    client = metadata_document_client(CIMD, ISSUER)
    assert (client.client_id, token_auth_method(server, client)) == (CIMD, "none")


def test_dcr_needs_a_registration_endpoint_else_ask_for_a_client_id() -> None:
    with pytest.raises(ClientRegistrationRequired, match="client id"):
        choose_registration(replace(SERVER, registration_endpoint=None), None, CIMD)


def request_body(server: AuthServer) -> dict[str, Any]:
    return dict(json.loads(build_registration_request(server, REDIRECT, "a b").content))


def test_dcr_registers_a_native_client_for_the_loopback_redirect() -> None:
    body = request_body(SERVER)
    assert body["application_type"] == "native"
    assert body["redirect_uris"] == [REDIRECT]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["token_endpoint_auth_method"] == "none"
    assert body["scope"] == "a b"


@pytest.mark.parametrize(
    ("offered", "requested"),
    [
        (("client_secret_basic",), "client_secret_basic"),
        (("client_secret_post",), "client_secret_post"),
        (("none", "client_secret_basic"), "none"),
        (("private_key_jwt",), "client_secret_basic"),
    ],
)
def test_dcr_asks_for_a_method_the_server_offers(offered: tuple[str, ...], requested: str) -> None:
    server = replace(SERVER, token_endpoint_auth_methods_supported=offered)
    assert request_body(server)["token_endpoint_auth_method"] == requested


def registered(body: Any, status: int = 201) -> ClientCredentials:
    response = httpx2.Response(status, json=body, request=httpx2.Request("POST", f"{ISSUER}/r"))
    return handle_registration_response(response, SERVER, REDIRECT)


def test_registration_response_is_bound_to_the_issuer() -> None:
    client = registered({"client_id": "c1", "client_secret": "s1", "issuer": "https://x.example"})
    assert client.issuer == ISSUER
    assert client.registration is Registration.DCR
    assert client.accepts_redirect(REDIRECT)
    assert not client.accepts_redirect("http://127.0.0.1:1/callback")
    assert "s1" not in repr(client)


@pytest.mark.parametrize(
    ("body", "status"), [({"error": "invalid_client_metadata"}, 400), ({"nope": 1}, 201), ([], 201)]
)
def test_failed_registration_is_an_error(body: Any, status: int) -> None:
    with pytest.raises(RegistrationFailed):
        registered(body, status)


def test_client_secret_basic_form_encodes_then_base64s() -> None:
    client = ClientCredentials("id:1", ISSUER, "p@ss word", auth_method="client_secret_basic")
    headers, fields = client_authentication(SERVER, client)
    decoded = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode()
    assert decoded == "id%3A1:p%40ss%20word"
    assert fields == {}


def test_client_secret_post_sends_credentials_in_the_body() -> None:
    server = replace(SERVER, token_endpoint_auth_methods_supported=("client_secret_post",))
    headers, fields = client_authentication(server, replace(PRE, auth_method=None))
    assert headers == {} and fields == {"client_id": "pre-id", "client_secret": "pre-secret"}


def test_public_client_sends_only_its_id() -> None:
    headers, fields = client_authentication(SERVER, ClientCredentials("pub", ISSUER))
    assert headers == {} and fields == {"client_id": "pub"}


def test_secret_client_defaults_to_basic_per_rfc_8414() -> None:
    assert token_auth_method(SERVER, PRE) == "client_secret_basic"
