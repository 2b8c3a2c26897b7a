"""The local Cognito-compatible authorization server, driven through Flask's test client."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.datastructures import MultiDict
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from demo_server.idp import (
    ClientConfig,
    IdpSettings,
    ResourceServerConfig,
    UserConfig,
    create_app,
)
from demo_server.idp.keys import SigningKeys
from tests.support.clock import FakeClock
from tests.support.idp_flow import (
    CALLBACK,
    DEMO_CLIENT,
    MCP_RESOURCE,
    authorize_params,
    csrf_from,
    pkce_pair,
    query_of,
    single,
)

ISSUER = "http://127.0.0.1:9000/us-east-1_Demo00001"
PASSWORD = "demo-password-for-tests"
CONFIDENTIAL = "confidential-app"
CONFIDENTIAL_SECRET = "confidential-secret-value"
CONFIDENTIAL_CALLBACK = "http://127.0.0.1:8765/callback"


@pytest.fixture(scope="session")
def keys() -> SigningKeys:
    return SigningKeys.generate()


@pytest.fixture(scope="session")
def demo_user() -> UserConfig:
    """The seeded user with a cheap hash: scrypt per test would dominate the suite's runtime."""
    cheap = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    return UserConfig("demo", cheap, "demo@example.com", ("demo-users",))


@dataclass
class Idp:
    """One app under test plus the steps of the flow a client performs against it."""

    app: Flask
    clock: FakeClock
    client: FlaskClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.app.test_client()

    def authorize(self, params: dict[str, str]) -> TestResponse:
        return self.client.get("/oauth2/authorize?" + urlencode(params))

    def sign_in(self, params: dict[str, str], password: str = PASSWORD) -> TestResponse:
        """Authorize, fill in the login form, and return the final response of the flow."""
        first = self.authorize(params)
        assert first.status_code == 302, first.text
        login_url = first.headers["Location"]
        if not login_url.startswith("/login?"):
            return first  # refused before sign-in, by redirect
        form = self.client.get(login_url)
        posted = self.client.post(
            login_url,
            data={"csrf_token": csrf_from(form.text), "username": "demo", "password": password},
        )
        if posted.status_code != 302:
            return posted
        return self.client.get(posted.headers["Location"])

    def code_for(self, params: dict[str, str]) -> str:
        response = self.sign_in(params)
        assert response.status_code == 302, response.text
        location = response.headers["Location"]
        assert location.startswith(params["redirect_uri"] + "?")
        assert single(location, "state") == params["state"]
        return single(location, "code")

    def token(self, data: dict[str, str], headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.post("/oauth2/token", data=data, headers=headers or {})

    def tokens(self, **authorize_extra: str) -> dict[str, Any]:
        verifier, challenge = pkce_pair()
        code = self.code_for(authorize_params(challenge, **authorize_extra))
        response = self.token(code_request(code, verifier))
        assert response.status_code == 200, response.text
        return dict(response.json or {})

    def refresh(self, refresh_token: str, **extra: str) -> TestResponse:
        data = {"grant_type": "refresh_token", "client_id": DEMO_CLIENT}
        return self.token({**data, "refresh_token": refresh_token, **extra})

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(self.client.get(f"/{POOL}/.well-known/jwks.json").json)  # type: ignore[arg-type]


POOL = "us-east-1_Demo00001"


def code_request(code: str, verifier: str | None, **extra: str) -> dict[str, str]:
    data = {
        "grant_type": "authorization_code",
        "client_id": DEMO_CLIENT,
        "code": code,
        "redirect_uri": CALLBACK,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return {**data, **extra}


@pytest.fixture
def make_idp(keys: SigningKeys, demo_user: UserConfig) -> Callable[..., Idp]:
    def make(**overrides: Any) -> Idp:
        clock = FakeClock(wall=1_800_000_000.0)
        confidential = ClientConfig(
            client_id=CONFIDENTIAL,
            client_secret=CONFIDENTIAL_SECRET,
            callback_urls=(CONFIDENTIAL_CALLBACK,),
            allowed_scopes=("openid", "email"),
        )
        settings = IdpSettings(
            demo_password=PASSWORD,
            keys=keys,
            clock=clock,
            clients=(confidential,),
            users=(demo_user,),
        )
        for name, value in overrides.items():
            settings = _replace(settings, name, value)
        return Idp(create_app(settings), clock)

    return make


def _replace(settings: IdpSettings, name: str, value: Any) -> IdpSettings:
    from dataclasses import replace

    return replace(settings, **{name: value})


@pytest.fixture
def idp(make_idp: Callable[..., Idp]) -> Idp:
    return make_idp()


def decode(token: str, keyset: KeySet) -> tuple[dict[str, Any], dict[str, Any]]:
    decoded = jwt.decode(token, keyset, algorithms=["RS256"])
    return dict(decoded.header), dict(decoded.claims)


# --- discovery -----------------------------------------------------------------------------


COGNITO_FIELDS = {
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "end_session_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "scopes_supported",
    "token_endpoint_auth_methods_supported",
}


def test_discovery_is_cognito_shaped_and_does_not_advertise_pkce(idp: Idp) -> None:
    response = idp.client.get(f"/{POOL}/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.json
    assert doc is not None
    assert set(doc) == COGNITO_FIELDS
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == "http://127.0.0.1:9000/oauth2/authorize"
    assert doc["token_endpoint"] == "http://127.0.0.1:9000/oauth2/token"
    assert doc["revocation_endpoint"] == "http://127.0.0.1:9000/oauth2/revoke"
    assert doc["userinfo_endpoint"] == "http://127.0.0.1:9000/oauth2/userInfo"
    assert doc["end_session_endpoint"] == "http://127.0.0.1:9000/logout"
    assert doc["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert doc["response_types_supported"] == ["code"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["scopes_supported"] == ["openid", "email", "phone", "profile"]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]


def test_advertise_pkce_adds_only_s256(make_idp: Callable[..., Idp]) -> None:
    doc = make_idp(advertise_pkce=True).client.get(f"/{POOL}/.well-known/openid-configuration").json
    assert doc is not None
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc) == COGNITO_FIELDS | {"code_challenge_methods_supported"}


@pytest.mark.parametrize(
    "path",
    [
        f"/.well-known/oauth-authorization-server/{POOL}",
        f"/.well-known/openid-configuration/{POOL}",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        f"/{POOL}/.well-known/oauth-authorization-server",
    ],
)
def test_discovery_exists_only_under_the_issuer(idp: Idp, path: str) -> None:
    assert idp.client.get(path).status_code == 404


def test_jwks_has_two_public_keys_with_distinct_kids(idp: Idp) -> None:
    jwks = idp.client.get(f"/{POOL}/.well-known/jwks.json").json
    assert jwks is not None
    kids = {key["kid"] for key in jwks["keys"]}
    assert len(kids) == 2
    for key in jwks["keys"]:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


# --- tokens --------------------------------------------------------------------------------


def test_access_token_has_cognito_claims_and_no_aud(idp: Idp) -> None:
    body = idp.tokens()
    assert set(body) == {"access_token", "id_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    header, claims = decode(body["access_token"], idp.jwks())
    assert set(header) == {"alg", "kid"} and header["alg"] == "RS256"
    assert set(claims) == {
        "sub",
        "iss",
        "client_id",
        "origin_jti",
        "token_use",
        "scope",
        "auth_time",
        "exp",
        "iat",
        "jti",
        "username",
        "cognito:groups",
        "version",
    }
    assert claims["iss"] == ISSUER
    assert claims["client_id"] == DEMO_CLIENT
    assert claims["token_use"] == "access"
    assert claims["scope"] == "openid email"
    assert claims["username"] == "demo"
    assert claims["cognito:groups"] == ["demo-users"]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["auth_time"] == int(idp.clock.now)


@pytest.mark.parametrize(("round_up", "exp_after_issue"), [(False, 3599.6), (True, 3600.6)])
def test_exp_is_whole_seconds_rounded_down_like_cognito_unless_asked(
    make_idp: Callable[..., Idp], round_up: bool, exp_after_issue: float
) -> None:
    idp = make_idp(round_expiry_up=round_up)
    idp.clock.now = 1_800_000_000.4  # issued 0.4 s into a second
    issued = idp.clock.now
    body = idp.tokens()

    _, access = decode(body["access_token"], idp.jwks())
    _, id_claims = decode(body["id_token"], idp.jwks())
    assert access["iat"] == 1_800_000_000 == id_claims["iat"]
    assert access["exp"] - issued == pytest.approx(exp_after_issue)
    assert id_claims["exp"] - issued == pytest.approx(exp_after_issue)
    assert body["expires_in"] == 3600


def test_id_token_is_for_the_client_and_signed_with_its_own_key(idp: Idp) -> None:
    body = idp.tokens(nonce="n-0S6_WzA2Mj")
    access_header, access = decode(body["access_token"], idp.jwks())
    id_header, claims = decode(body["id_token"], idp.jwks())
    assert id_header["kid"] != access_header["kid"]
    assert claims["aud"] == DEMO_CLIENT
    assert claims["token_use"] == "id"
    assert claims["iss"] == ISSUER
    assert claims["cognito:username"] == "demo"
    assert claims["email"] == "demo@example.com"
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["sub"] == access["sub"]
    assert claims["origin_jti"] == access["origin_jti"]
    digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_no_id_token_without_openid_scope(idp: Idp) -> None:
    body = idp.tokens(scope=f"{MCP_RESOURCE}/tools")
    assert "id_token" not in body
    _, claims = decode(body["access_token"], idp.jwks())
    assert claims["scope"] == f"{MCP_RESOURCE}/tools"


def test_omitted_scope_grants_all_allowed_scopes(idp: Idp) -> None:
    body = idp.tokens(scope="")
    _, claims = decode(body["access_token"], idp.jwks())
    assert claims["scope"].split() == [
        "openid",
        "email",
        "profile",
        f"{MCP_RESOURCE}/tools",
        f"{MCP_RESOURCE}/admin",
    ]


def test_unknown_scope_is_refused_by_redirect(idp: Idp) -> None:
    _, challenge = pkce_pair()
    params = authorize_params(challenge, scope="openid phone")
    response = idp.sign_in(params)
    assert response.status_code == 302
    assert single(response.headers["Location"], "error") == "invalid_scope"
    assert single(response.headers["Location"], "state") == params["state"]


# --- resource indicators (RFC 8707) --------------------------------------------------------


def test_resource_on_authorize_sets_aud(idp: Idp) -> None:
    body = idp.tokens(resource=MCP_RESOURCE)
    _, claims = decode(body["access_token"], idp.jwks())
    assert claims["aud"] == MCP_RESOURCE
    _, id_claims = decode(body["id_token"], idp.jwks())
    assert id_claims["aud"] == DEMO_CLIENT


def test_resource_on_token_request_only_sets_aud(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    response = idp.token(code_request(code, verifier, resource=MCP_RESOURCE))
    assert response.status_code == 200, response.text
    _, claims = decode(response.json["access_token"], idp.jwks())  # type: ignore[index]
    assert claims["aud"] == MCP_RESOURCE


def test_unknown_resource_on_authorize_is_invalid_target(idp: Idp) -> None:
    _, challenge = pkce_pair()
    response = idp.authorize(authorize_params(challenge, resource="http://127.0.0.1:8999/mcp"))
    assert response.status_code == 302
    assert single(response.headers["Location"], "error") == "invalid_target"


@pytest.mark.parametrize("resource", ["http://127.0.0.1:8999/mcp", f"{MCP_RESOURCE}/"])
def test_unknown_resource_on_token_request_is_invalid_target(idp: Idp, resource: str) -> None:
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    response = idp.token(code_request(code, verifier, resource=resource))
    assert response.status_code == 400
    assert response.json is not None and response.json["error"] == "invalid_target"


def test_token_resource_must_match_the_authorized_one(make_idp: Callable[..., Idp]) -> None:
    other = "http://127.0.0.1:8001/mcp"
    idp = make_idp(
        resource_servers=(ResourceServerConfig(MCP_RESOURCE), ResourceServerConfig(other))
    )
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge, resource=MCP_RESOURCE))
    response = idp.token(code_request(code, verifier, resource=other))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_target"  # type: ignore[index]


def test_refresh_keeps_aud_and_refuses_another_resource(make_idp: Callable[..., Idp]) -> None:
    other = "http://127.0.0.1:8001/mcp"
    idp = make_idp(
        resource_servers=(ResourceServerConfig(MCP_RESOURCE), ResourceServerConfig(other))
    )
    body = idp.tokens(resource=MCP_RESOURCE)
    refreshed = idp.refresh(body["refresh_token"])
    assert refreshed.status_code == 200
    _, claims = decode(refreshed.json["access_token"], idp.jwks())  # type: ignore[index]
    assert claims["aud"] == MCP_RESOURCE
    refused = idp.refresh(body["refresh_token"], resource=other)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"  # type: ignore[index]


# --- PKCE ----------------------------------------------------------------------------------


def test_public_client_without_pkce_is_refused(idp: Idp) -> None:
    params = authorize_params(None)
    response = idp.sign_in(params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert single(location, "error") == "invalid_request"
    assert single(location, "state") == params["state"]
    assert "code" not in query_of(location)


def test_plain_pkce_is_refused(idp: Idp) -> None:
    verifier, _ = pkce_pair()
    params = authorize_params(None, code_challenge=verifier, code_challenge_method="plain")
    response = idp.sign_in(params)
    assert single(response.headers["Location"], "error") == "invalid_request"


def test_pkce_without_method_is_refused(idp: Idp) -> None:
    _, challenge = pkce_pair()
    response = idp.sign_in(authorize_params(None, code_challenge=challenge))
    assert single(response.headers["Location"], "error") == "invalid_request"


def test_wrong_or_missing_verifier_is_refused(idp: Idp) -> None:
    _, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    wrong = idp.token(code_request(code, pkce_pair()[0]))
    assert wrong.status_code == 400 and wrong.json["error"] == "invalid_grant"  # type: ignore[index]
    code = idp.code_for(authorize_params(challenge))
    missing = idp.token(code_request(code, None))
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"  # type: ignore[index]


# --- redirect URIs and codes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:53685/callback",
        "http://127.0.0.1:53682/callback/",
        "http://127.0.0.1:53682/other",
        "http://127.0.0.1/callback",
        "https://127.0.0.1:53682/callback",
        "http://evil.example:53682/callback",
        "http://127.0.0.1:53682/callback?x=1",
    ],
)
def test_redirect_uri_must_match_exactly_and_errors_do_not_redirect(
    idp: Idp, redirect_uri: str
) -> None:
    _, challenge = pkce_pair()
    response = idp.authorize(authorize_params(challenge, redirect_uri=redirect_uri))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "text/html" in response.content_type


def test_both_loopback_spellings_of_every_broker_port_are_registered(idp: Idp) -> None:
    for port in (53682, 53683, 53684):
        for host in ("localhost", "127.0.0.1"):
            callback = f"http://{host}:{port}/callback"
            _, challenge = pkce_pair()
            response = idp.authorize(authorize_params(challenge, redirect_uri=callback))
            assert response.status_code == 302, callback  # to /login: the request was valid


def test_unknown_client_gets_an_error_page_that_escapes_input(idp: Idp) -> None:
    _, challenge = pkce_pair()
    response = idp.authorize(authorize_params(challenge, client_id="<script>x</script>"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "<script>x" not in response.text


def test_code_is_single_use(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    assert idp.token(code_request(code, verifier)).status_code == 200
    again = idp.token(code_request(code, verifier))
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"  # type: ignore[index]


def test_code_expires_after_five_minutes(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    idp.clock.advance(301)
    late = idp.token(code_request(code, verifier))
    assert late.status_code == 400 and late.json["error"] == "invalid_grant"  # type: ignore[index]


def test_code_is_usable_within_five_minutes(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    idp.clock.advance(290)
    assert idp.token(code_request(code, verifier)).status_code == 200


def test_token_request_redirect_uri_must_equal_the_authorized_one(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    other = code_request(code, verifier, redirect_uri="http://localhost:53682/callback")
    response = idp.token(other)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"  # type: ignore[index]


def test_code_of_another_client_is_refused(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    basic = base64.b64encode(f"{CONFIDENTIAL}:{CONFIDENTIAL_SECRET}".encode()).decode()
    data = code_request(code, verifier)
    del data["client_id"]
    response = idp.token(data, {"Authorization": f"Basic {basic}"})
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"  # type: ignore[index]


# --- refresh and rotation ------------------------------------------------------------------


def test_refresh_without_rotation_returns_no_refresh_token_and_keeps_origin(idp: Idp) -> None:
    body = idp.tokens()
    idp.clock.advance(10)
    refreshed = idp.refresh(body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json
    assert new is not None
    assert set(new) == {"access_token", "id_token", "token_type", "expires_in"}
    _, old_claims = decode(body["access_token"], idp.jwks())
    _, claims = decode(new["access_token"], idp.jwks())
    assert claims["origin_jti"] == old_claims["origin_jti"]
    assert claims["jti"] != old_claims["jti"]
    assert claims["auth_time"] == old_claims["auth_time"]
    assert claims["iat"] == old_claims["iat"] + 10
    assert idp.refresh(body["refresh_token"]).status_code == 200  # still valid: no rotation


def test_rotation_issues_a_new_refresh_token_and_retires_the_old_one(
    make_idp: Callable[..., Idp],
) -> None:
    idp = make_idp(refresh_token_rotation=True, rotation_grace_seconds=0)
    body = idp.tokens()
    refreshed = idp.refresh(body["refresh_token"])
    assert refreshed.status_code == 200
    new_refresh = refreshed.json["refresh_token"]  # type: ignore[index]
    assert new_refresh != body["refresh_token"]
    old = idp.refresh(body["refresh_token"])
    assert old.status_code == 400 and old.json["error"] == "invalid_grant"  # type: ignore[index]
    assert idp.refresh(new_refresh).status_code == 200


def test_rotated_out_refresh_token_works_during_the_grace_period_only(
    make_idp: Callable[..., Idp],
) -> None:
    idp = make_idp(refresh_token_rotation=True, rotation_grace_seconds=30)
    body = idp.tokens()
    assert idp.refresh(body["refresh_token"]).status_code == 200
    idp.clock.advance(29)
    assert idp.refresh(body["refresh_token"]).status_code == 200
    idp.clock.advance(2)
    late = idp.refresh(body["refresh_token"])
    assert late.status_code == 400 and late.json["error"] == "invalid_grant"  # type: ignore[index]


def test_refresh_token_expires(make_idp: Callable[..., Idp]) -> None:
    idp = make_idp(refresh_token_ttl=100)
    body = idp.tokens()
    idp.clock.advance(101)
    assert idp.refresh(body["refresh_token"]).json["error"] == "invalid_grant"  # type: ignore[index]


def test_access_token_ttl_is_configurable(make_idp: Callable[..., Idp]) -> None:
    idp = make_idp(access_token_ttl=5)
    body = idp.tokens()
    assert body["expires_in"] == 5
    _, claims = decode(body["access_token"], idp.jwks())
    assert claims["exp"] - claims["iat"] == 5


# --- revocation ----------------------------------------------------------------------------


def revoke(idp: Idp, token: str, **extra: str) -> TestResponse:
    return idp.client.post(
        "/oauth2/revoke", data={"token": token, "client_id": DEMO_CLIENT, **extra}
    )


def test_revoking_a_refresh_token_invalidates_it(idp: Idp) -> None:
    body = idp.tokens()
    response = revoke(idp, body["refresh_token"])
    assert response.status_code == 200 and response.data == b""
    refused = idp.refresh(body["refresh_token"])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"  # type: ignore[index]
    userinfo = idp.client.get(
        "/oauth2/userInfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.status_code == 401


@pytest.mark.parametrize("which", ["access_token", "id_token"])
def test_revoking_a_jwt_is_unsupported_token_type(idp: Idp, which: str) -> None:
    body = idp.tokens()
    response = revoke(idp, body[which])
    assert response.status_code == 400
    assert response.json["error"] == "unsupported_token_type"  # type: ignore[index]
    assert idp.refresh(body["refresh_token"]).status_code == 200


def test_revoking_an_unknown_token_is_a_quiet_200(idp: Idp) -> None:
    response = revoke(idp, "not-a-token-we-issued")
    assert response.status_code == 200 and response.data == b""


def test_revocation_requires_a_known_client(idp: Idp) -> None:
    body = idp.tokens()
    response = idp.client.post("/oauth2/revoke", data={"token": body["refresh_token"]})
    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"  # type: ignore[index]
    assert idp.refresh(body["refresh_token"]).status_code == 200


# --- confidential clients ------------------------------------------------------------------


def confidential_code(idp: Idp) -> str:
    params = authorize_params(None, client_id=CONFIDENTIAL, redirect_uri=CONFIDENTIAL_CALLBACK)
    return idp.code_for(params)


def confidential_request(code: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CONFIDENTIAL_CALLBACK,
    }


def test_confidential_client_with_client_secret_basic(idp: Idp) -> None:
    basic = base64.b64encode(f"{CONFIDENTIAL}:{CONFIDENTIAL_SECRET}".encode()).decode()
    response = idp.token(
        confidential_request(confidential_code(idp)), {"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200, response.text
    _, claims = decode(response.json["access_token"], idp.jwks())  # type: ignore[index]
    assert claims["client_id"] == CONFIDENTIAL


def test_confidential_client_with_client_secret_post(idp: Idp) -> None:
    data = confidential_request(confidential_code(idp))
    data.update(client_id=CONFIDENTIAL, client_secret=CONFIDENTIAL_SECRET)
    assert idp.token(data).status_code == 200


@pytest.mark.parametrize("secret", ["wrong", "", CONFIDENTIAL_SECRET + "x", "é" * 5])
def test_confidential_client_with_a_wrong_secret_is_refused(idp: Idp, secret: str) -> None:
    data = confidential_request(confidential_code(idp))
    data.update(client_id=CONFIDENTIAL, client_secret=secret)
    response = idp.token(data)
    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"  # type: ignore[index]


def test_confidential_client_cannot_skip_authentication(idp: Idp) -> None:
    data = confidential_request(confidential_code(idp))
    data["client_id"] = CONFIDENTIAL
    response = idp.token(data)
    assert response.json["error"] == "invalid_client"  # type: ignore[index]


# --- token endpoint errors and hostile input -----------------------------------------------


def test_token_errors_are_rfc6749_json(idp: Idp) -> None:
    response = idp.token({"grant_type": "password", "username": "demo", "password": PASSWORD})
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.json["error"] == "unsupported_grant_type"  # type: ignore[index]
    assert "no-store" in response.headers["Cache-Control"]


def test_token_responses_are_not_cached(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    response = idp.token(code_request(code, verifier))
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/json"


GARBAGE: list[tuple[str, str, dict[str, Any]]] = [
    (
        "POST",
        "/oauth2/token",
        {"data": b"\xff\xfe\x00garbage", "content_type": "application/x-www-form-urlencoded"},
    ),
    ("POST", "/oauth2/token", {"json": {"grant_type": ["authorization_code"], "code": {"a": 1}}}),
    ("POST", "/oauth2/token", {"data": "grant_type=authorization_code&code=x&code=y"}),
    (
        "POST",
        "/oauth2/token",
        {
            "data": b"grant_type=refresh_token&refresh_token=%ED%B3%BF%ff",
            "content_type": "application/x-www-form-urlencoded",
        },
    ),
    (
        "POST",
        "/oauth2/token",
        {
            "data": {"grant_type": "authorization_code"},
            "headers": {"Authorization": "Basic //79/w=="},
        },
    ),
    (
        "POST",
        "/oauth2/token",
        {"data": {"grant_type": "authorization_code"}, "headers": {"Authorization": "Basic !!!"}},
    ),
    (
        "POST",
        "/oauth2/token",
        {"data": {"grant_type": "authorization_code"}, "headers": {"Authorization": "Basic"}},
    ),
    (
        "POST",
        "/oauth2/token",
        {"data": {"grant_type": "refresh_token", "refresh_token": "x" * 60000}},
    ),
    (
        "POST",
        "/oauth2/token",
        {"data": "a=" + "b" * 100_000, "content_type": "application/x-www-form-urlencoded"},
    ),
    (
        "POST",
        "/oauth2/token",
        {
            "data": b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n',
            "content_type": "multipart/form-data; boundary=x",
        },
    ),
    ("GET", "/oauth2/token", {}),
    ("POST", "/oauth2/revoke", {"data": {"token": "", "client_id": DEMO_CLIENT}}),
    (
        "POST",
        "/oauth2/revoke",
        {"data": {"token": "a.b.c", "client_id": DEMO_CLIENT, "token_type_hint": "weird"}},
    ),
    (
        "POST",
        "/oauth2/revoke",
        {"data": {"token": "eyJhbGciOiJub25lIn0.e30.", "client_id": DEMO_CLIENT}},
    ),
    ("GET", "/oauth2/authorize", {}),
    ("GET", "/oauth2/authorize?response_type=code&client_id=demo-broker&redirect_uri=%ff%fe", {}),
    (
        "GET",
        "/oauth2/authorize?response_type=token&client_id=demo-broker&redirect_uri=" + CALLBACK,
        {},
    ),
    ("GET", "/oauth2/authorize?client_id=demo-broker&client_id=x&response_type=code", {}),
    ("GET", "/oauth2/authorize?state=" + "s" * 20000, {}),
    ("GET", "/oauth2/userInfo", {"headers": {"Authorization": "Bearer \u00e9\u00e9"}}),
    ("GET", "/oauth2/userInfo", {"headers": {"Authorization": "Bearer a.b.c"}}),
    ("POST", "/login", {"data": {"username": ["a", "b"], "password": 5}}),
    (
        "POST",
        "/login?%ff",
        {"data": b"\xff\xff", "content_type": "application/x-www-form-urlencoded"},
    ),
    ("GET", "/logout?client_id=%ff&logout_uri=javascript:alert(1)", {}),
    ("GET", f"/{POOL}/.well-known/openid-configuration", {"headers": {"Host": "evil.example"}}),
    ("GET", f"/{POOL}/.well-known/openid-configuration", {"headers": {"Host": "127.0.0.1:1"}}),
    ("DELETE", "/oauth2/token", {}),
    ("GET", "/%00", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), GARBAGE)
def test_garbage_never_causes_a_server_error(
    idp: Idp, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = idp.client.open(path, method=method, **kwargs)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "access_token" not in response.text


def test_foreign_host_header_is_refused(idp: Idp) -> None:
    response = idp.client.get(
        f"/{POOL}/.well-known/openid-configuration", headers={"Host": "attacker.example:9000"}
    )
    assert response.status_code == 421
    assert "issuer" not in response.text


# --- hosted UI: login, CSRF, logout, userInfo, auto-login ----------------------------------


def test_unauthenticated_authorize_goes_to_login_with_the_same_query(idp: Idp) -> None:
    _, challenge = pkce_pair()
    params = authorize_params(challenge)
    response = idp.authorize(params)
    assert response.status_code == 302
    login = urlsplit(response.headers["Location"])
    assert login.path == "/login"
    assert {k: v[0] for k, v in query_of(response.headers["Location"]).items()} == params


def test_wrong_password_shows_the_form_again_with_escaped_input(idp: Idp) -> None:
    _, challenge = pkce_pair()
    login_url = idp.authorize(authorize_params(challenge)).headers["Location"]
    form = idp.client.get(login_url)
    response = idp.client.post(
        login_url,
        data={"csrf_token": csrf_from(form.text), "username": "<b>demo</b>", "password": "x"},
    )
    assert response.status_code == 401
    assert "Incorrect username or password." in response.text
    assert "<b>demo</b>" not in response.text
    assert "&lt;b&gt;demo&lt;/b&gt;" in response.text


def test_wrong_password_issues_no_code(idp: Idp) -> None:
    _, challenge = pkce_pair()
    response = idp.sign_in(authorize_params(challenge), password="not-the-password")
    assert response.status_code == 401
    assert "Location" not in response.headers


def test_login_without_csrf_token_does_not_sign_in(idp: Idp) -> None:
    _, challenge = pkce_pair()
    params = authorize_params(challenge)
    login_url = idp.authorize(params).headers["Location"]
    idp.client.get(login_url)
    response = idp.client.post(login_url, data={"username": "demo", "password": PASSWORD})
    assert response.status_code == 400
    assert idp.authorize(params).headers["Location"].startswith("/login?")


def test_logout_clears_the_session_and_returns_to_a_registered_uri(idp: Idp) -> None:
    _, challenge = pkce_pair()
    idp.code_for(authorize_params(challenge))
    session_params = authorize_params(challenge)
    assert idp.authorize(session_params).headers["Location"].startswith(CALLBACK)
    response = idp.client.get(
        "/logout?" + urlencode({"client_id": DEMO_CLIENT, "logout_uri": CALLBACK})
    )
    assert response.status_code == 302 and response.headers["Location"] == CALLBACK
    assert idp.authorize(authorize_params(challenge)).headers["Location"].startswith("/login?")


@pytest.mark.parametrize(
    "query",
    [
        {"client_id": DEMO_CLIENT, "logout_uri": "https://evil.example/"},
        {"client_id": "nobody", "logout_uri": CALLBACK},
        {"client_id": DEMO_CLIENT},
    ],
)
def test_logout_never_redirects_to_an_unregistered_uri(idp: Idp, query: dict[str, str]) -> None:
    response = idp.client.get("/logout?" + urlencode(query))
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_userinfo_returns_the_user_for_an_access_token(idp: Idp) -> None:
    body = idp.tokens()
    response = idp.client.get(
        "/oauth2/userInfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert response.status_code == 200
    _, claims = decode(body["access_token"], idp.jwks())
    assert response.json == {
        "sub": claims["sub"],
        "username": "demo",
        "email": "demo@example.com",
        "email_verified": "true",
    }


def test_userinfo_refuses_an_id_token_and_an_expired_token(idp: Idp) -> None:
    body = idp.tokens()
    as_id = idp.client.get(
        "/oauth2/userInfo", headers={"Authorization": f"Bearer {body['id_token']}"}
    )
    assert as_id.status_code == 401
    assert 'error="invalid_token"' in as_id.headers["WWW-Authenticate"]
    idp.clock.advance(3601)
    expired = idp.client.get(
        "/oauth2/userInfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert expired.status_code == 401


def test_auto_login_skips_the_form(make_idp: Callable[..., Idp]) -> None:
    idp = make_idp(auto_login="demo")
    _, challenge = pkce_pair()
    params = authorize_params(challenge)
    response = idp.authorize(params)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(CALLBACK + "?")
    assert single(response.headers["Location"], "state") == params["state"]


def test_auto_login_of_an_unknown_user_is_refused(keys: SigningKeys) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        create_app(IdpSettings(keys=keys, auto_login="mallory"))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::"])
def test_non_loopback_host_is_refused(keys: SigningKeys, host: str) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        create_app(IdpSettings(keys=keys, host=host))


def test_demo_password_is_random_per_start_and_stored_hashed(keys: SigningKeys) -> None:
    first, second = IdpSettings(keys=keys).resolved(), IdpSettings(keys=keys).resolved()
    assert first.demo_password and second.demo_password
    assert first.demo_password != second.demo_password
    demo = next(u for u in first.users if u.username == "demo")
    assert first.demo_password not in demo.password_hash


def test_json_round_trip_of_discovery_is_stable(idp: Idp) -> None:
    raw = idp.client.get(f"/{POOL}/.well-known/openid-configuration").data
    assert json.loads(raw)["issuer"] == ISSUER


# --- secrets never reach the logs ----------------------------------------------------------


def test_no_token_code_verifier_or_password_is_logged_even_at_debug(
    make_idp: Callable[..., Idp], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    idp = make_idp(refresh_token_rotation=True)
    verifier, challenge = pkce_pair()
    code = idp.code_for(authorize_params(challenge))
    body = idp.token(code_request(code, verifier)).json
    assert body is not None
    refreshed = idp.refresh(body["refresh_token"]).json
    assert refreshed is not None
    revoke(idp, refreshed["refresh_token"])
    secrets_seen = [
        code,
        verifier,
        PASSWORD,
        body["access_token"],
        body["id_token"],
        body["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
    ]
    assert caplog.records, "expected some log output to check"
    for value in secrets_seen:
        assert value not in caplog.text


# --- fuzzing the token endpoint ------------------------------------------------------------

FIELDS = st.sampled_from(
    [
        "grant_type",
        "code",
        "client_id",
        "client_secret",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "resource",
        "scope",
    ]
)
VALUES = st.one_of(
    st.sampled_from(["authorization_code", "refresh_token", DEMO_CLIENT, CONFIDENTIAL, CALLBACK]),
    st.text(max_size=80),
)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form=st.lists(st.tuples(FIELDS, VALUES), max_size=8))
def test_token_endpoint_fuzz_never_errors_500(
    fuzz_client: FlaskClient, form: list[tuple[str, str]]
) -> None:
    response = fuzz_client.post("/oauth2/token", data=MultiDict(form))
    assert response.status_code in (400, 401), response.text
    assert response.json is not None and "error" in response.json


@pytest.fixture(scope="module")
def fuzz_client() -> FlaskClient:
    return create_app(IdpSettings(keys=SigningKeys.generate())).test_client()
