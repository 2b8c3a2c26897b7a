"""Enterprise-managed authorization at the local authorization server (SEP-990; draft-ietf-oauth-
identity-assertion-authz-grant): token exchange issuing ID-JAGs (``--enterprise-idp``) and the JWT
bearer grant redeeming a trusted IdP's ID-JAGs (``--trust-idp``), through Flask's test client. The
foreign IdP's keys are served by a real JWKS server on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from demo_server.idp import ClientConfig, IdpSettings, UserConfig, create_app
from demo_server.idp.extension_settings import (
    DpopSettings,
    EnterpriseSettings,
    IdJagAudience,
    TrustedIdp,
)
from demo_server.idp.keys import SigningKeys
from tests.support.enterprise_client import (
    ID_JAG_TYPE,
    JWT_BEARER,
    DpopKey,
    exchange_request,
    id_jag_claims,
    sign_id_jag,
    unverified_claims,
)
from tests.support.idp_flow import CALLBACK, DEMO_CLIENT, authorize_params, pkce_pair, single
from tests.support.jwt_issuer import JwksServer, TestIssuer, signing_key

# The trusted IdP's JWKS is fetched over real HTTP on 127.0.0.1.
pytestmark = pytest.mark.integration

POOL = "us-east-1_Demo00001"
OWN_ISSUER = f"http://127.0.0.1:9000/{POOL}"
RESOURCE = "http://127.0.0.1:8000/mcp"
TARGET_AS = "https://mcp-as.example/issuer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ENTERPRISE_CLIENT = ("ent-client", "ent-client-secret-canary-31f4")


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys.generate()


def base_settings(keys: SigningKeys, clock: Clock) -> IdpSettings:
    cheap = generate_password_hash("pw", method="pbkdf2:sha256:1000")
    return IdpSettings(
        keys=keys,
        clock=clock,
        auto_login="demo",
        demo_password="pw",
        users=(UserConfig("demo", cheap, "demo@example.com"),),
    )


# --- the IdP side: token exchange ---------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def idp(keys: SigningKeys, clock: Clock) -> FlaskClient:
    enterprise = EnterpriseSettings(
        issue_id_jags=True, audiences=(IdJagAudience(TARGET_AS, "client-at-target"),)
    )
    other = ClientConfig("other-app", (CALLBACK,), ("openid", "email"), client_secret="other-s")
    settings = replace(base_settings(keys, clock), enterprise=enterprise, clients=(other,))
    return create_app(settings).test_client()


def id_token_of(client: FlaskClient) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    response = client.get("/oauth2/authorize?" + urlencode(authorize_params(challenge)))
    data = {
        "grant_type": "authorization_code",
        "client_id": DEMO_CLIENT,
        "code": single(response.headers["Location"], "code"),
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    return dict(client.post("/oauth2/token", data=data).json or {})


def exchange(client: FlaskClient, id_token: str, **extra: str) -> TestResponse:
    data = exchange_request(id_token, TARGET_AS, RESOURCE, **extra)
    return client.post("/oauth2/token", data=data)


def error_of(response: TestResponse) -> tuple[int, str]:
    return response.status_code, str((response.json or {}).get("error"))


def test_an_id_token_is_exchanged_for_an_id_jag(idp: FlaskClient, keys: SigningKeys) -> None:
    tokens = id_token_of(idp)
    response = exchange(idp, tokens["id_token"], scope=f"{RESOURCE}/tools")
    assert response.status_code == 200, response.text
    body = dict(response.json or {})
    assert body["issued_token_type"] == ID_JAG_TYPE
    assert body["token_type"] == "N_A"
    assert body["expires_in"] == 300
    assert body["scope"] == f"{RESOURCE}/tools"
    assert "refresh_token" not in body
    assert response.headers["Cache-Control"] == "no-store"
    jwks = KeySet.import_key_set(idp.get(f"/{POOL}/.well-known/jwks.json").json)  # type: ignore[arg-type]
    grant = jwt.decode(body["access_token"], jwks, algorithms=["RS256"])
    assert grant.header["typ"] == "oauth-id-jag+jwt"
    claims = grant.claims
    id_claims = unverified_claims(tokens["id_token"])
    assert claims["iss"] == OWN_ISSUER
    assert claims["sub"] == id_claims["sub"]
    assert claims["aud"] == TARGET_AS
    assert claims["client_id"] == "client-at-target"  # the mapping, draft §"Client ID"
    assert claims["resource"] == RESOURCE
    assert claims["scope"] == f"{RESOURCE}/tools"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["email"] == "demo@example.com"
    assert claims["auth_time"] == id_claims["auth_time"]
    again = dict(exchange(idp, tokens["id_token"]).json or {})
    assert claims["jti"] != unverified_claims(again["access_token"])["jti"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"requested_token_type": ACCESS_TOKEN_TYPE}, "invalid_request"),
        ({"subject_token_type": ACCESS_TOKEN_TYPE}, "invalid_request"),
        ({"resource": ""}, "invalid_request"),
        ({"audience": ""}, "invalid_request"),
        ({"audience": "https://unknown-as.example"}, "invalid_target"),
        ({"resource": "not a uri"}, "invalid_target"),
        ({"resource": RESOURCE + "#frag"}, "invalid_target"),
        ({"actor_token": "x", "actor_token_type": "urn:x"}, "invalid_request"),
    ],
)
def test_a_malformed_exchange_is_refused(
    idp: FlaskClient, extra: dict[str, str], expected: str
) -> None:
    tokens = id_token_of(idp)
    data = exchange_request(tokens["id_token"], TARGET_AS, RESOURCE)
    data.update(extra)
    response = idp.post("/oauth2/token", data={k: v for k, v in data.items() if v})
    assert error_of(response) == (400, expected)
    assert "access_token" not in response.text


def test_only_the_id_tokens_own_client_may_exchange_it(idp: FlaskClient) -> None:
    tokens = id_token_of(idp)
    data = exchange_request(tokens["id_token"], TARGET_AS, RESOURCE)
    del data["client_id"]
    response = idp.post("/oauth2/token", data=data, auth=("other-app", "other-s"))
    assert error_of(response) == (400, "invalid_grant")


@pytest.mark.parametrize("which", ["access_token", "forged", "garbage"])
def test_only_an_id_token_of_this_idp_is_a_subject_token(idp: FlaskClient, which: str) -> None:
    tokens = id_token_of(idp)
    subject = {
        "access_token": tokens["access_token"],
        "forged": TestIssuer("http://127.0.0.1/forger", signing_key(0)).sign(
            unverified_claims(tokens["id_token"])
        ),
        "garbage": "not-a-jwt",
    }[which]
    assert error_of(exchange(idp, subject)) == (400, "invalid_grant")


def test_an_expired_id_token_is_refused(idp: FlaskClient, clock: Clock) -> None:
    tokens = id_token_of(idp)
    clock.now += 3600
    assert error_of(exchange(idp, tokens["id_token"])) == (400, "invalid_grant")


def test_a_revoked_sign_in_is_refused(idp: FlaskClient) -> None:
    tokens = id_token_of(idp)
    revoke = {"token": tokens["refresh_token"], "client_id": DEMO_CLIENT}
    assert idp.post("/oauth2/revoke", data=revoke).status_code == 200
    assert error_of(exchange(idp, tokens["id_token"])) == (400, "invalid_grant")


def test_without_enterprise_idp_there_is_no_token_exchange(keys: SigningKeys, clock: Clock) -> None:
    plain = create_app(base_settings(keys, clock)).test_client()
    tokens = id_token_of(plain)
    assert error_of(exchange(plain, tokens["id_token"])) == (400, "unsupported_grant_type")
    doc = plain.get(f"/{POOL}/.well-known/openid-configuration").json or {}
    assert "grant_types_supported" not in doc


# --- the authorization-server side: the JWT bearer grant -----------------------------------


@pytest.fixture(scope="module")
def foreign_idp() -> Iterator[JwksServer]:
    with JwksServer(signing_key(0), kid="idp-kid") as server:
        yield server


@pytest.fixture
def trusting(keys: SigningKeys, clock: Clock, foreign_idp: JwksServer) -> FlaskClient:
    return trusting_app(keys, clock, foreign_idp)


def trusting_app(
    keys: SigningKeys, clock: Clock, foreign_idp: JwksServer, dpop: DpopSettings | None = None
) -> FlaskClient:
    client = ClientConfig(
        client_id=ENTERPRISE_CLIENT[0],
        client_secret=ENTERPRISE_CLIENT[1],
        callback_urls=(),
        allowed_scopes=(f"{RESOURCE}/tools", f"{RESOURCE}/admin"),
        allowed_flows=("jwt-bearer",),
    )
    code_only = ClientConfig("code-only", (CALLBACK,), ("openid",), client_secret="code-only-s")
    enterprise = EnterpriseSettings(trusted_idps=(TrustedIdp(foreign_idp.issuer),))
    settings = replace(
        base_settings(keys, clock),
        enterprise=enterprise,
        clients=(client, code_only),
        dpop=dpop or DpopSettings(),
    )
    return create_app(settings).test_client()


def grant_of(
    foreign_idp: JwksServer, typ: str | None = "oauth-id-jag+jwt", **overrides: Any
) -> str:
    claims = id_jag_claims(
        foreign_idp.issuer, OWN_ISSUER, ENTERPRISE_CLIENT[0], RESOURCE, overrides
    )
    return sign_id_jag(signing_key(0), "idp-kid", claims, typ)


def redeem(
    client: FlaskClient,
    assertion: str,
    auth: tuple[str, str] | None = ENTERPRISE_CLIENT,
    headers: dict[str, str] | None = None,
    **extra: str,
) -> TestResponse:
    data = {"grant_type": JWT_BEARER, "assertion": assertion, **extra}
    return client.post("/oauth2/token", data=data, auth=auth, headers=headers or {})


def test_a_trusted_id_jag_is_redeemed_for_an_access_token(
    trusting: FlaskClient, foreign_idp: JwksServer
) -> None:
    response = redeem(trusting, grant_of(foreign_idp))
    assert response.status_code == 200, response.text
    body = dict(response.json or {})
    assert body["token_type"] == "Bearer"
    assert body["scope"] == f"{RESOURCE}/tools"
    assert "refresh_token" not in body and "id_token" not in body
    claims = unverified_claims(body["access_token"])
    assert claims["iss"] == OWN_ISSUER
    assert claims["aud"] == RESOURCE
    assert claims["client_id"] == ENTERPRISE_CLIENT[0]
    assert claims["username"] == "enterprise-user-1"
    assert claims["scope"] == f"{RESOURCE}/tools"


def test_with_dpop_a_proof_binds_the_redeemed_token_to_its_key(
    keys: SigningKeys, clock: Clock, foreign_idp: JwksServer
) -> None:
    """RFC 9449 §5 for the JWT bearer grant as for every grant (``--dpop --dpop-nonce``): a
    proof without the server's nonce is refused and spends nothing; with it the token is
    ``token_type: DPoP`` with ``cnf.jkt``; without a proof it stays Bearer."""
    app = trusting_app(keys, clock, foreign_idp, DpopSettings(enabled=True, require_nonce=True))
    key, assertion = DpopKey(), grant_of(foreign_idp)
    url = "http://localhost/oauth2/token"
    first = redeem(app, assertion, headers={"DPoP": key.proof("POST", url)})
    assert error_of(first) == (400, "use_dpop_nonce")
    nonce = first.headers["DPoP-Nonce"]
    bound = redeem(app, assertion, headers={"DPoP": key.proof("POST", url, nonce=nonce)})
    assert bound.status_code == 200, bound.text
    body = dict(bound.json or {})
    assert body["token_type"] == "DPoP" and "refresh_token" not in body
    assert unverified_claims(body["access_token"])["cnf"] == {"jkt": key.jkt}
    plain = dict(redeem(app, grant_of(foreign_idp)).json or {})
    assert plain["token_type"] == "Bearer" and "cnf" not in unverified_claims(plain["access_token"])


def test_the_discovery_document_advertises_the_profile_not_the_issuers(
    trusting: FlaskClient, foreign_idp: JwksServer
) -> None:
    doc = trusting.get(f"/{POOL}/.well-known/openid-configuration").json or {}
    assert doc["authorization_grant_profiles_supported"] == [
        "urn:ietf:params:oauth:grant-profile:id-jag"
    ]
    assert JWT_BEARER in doc["grant_types_supported"]
    assert foreign_idp.issuer not in str(doc)


def test_a_replayed_id_jag_is_refused(trusting: FlaskClient, foreign_idp: JwksServer) -> None:
    assertion = grant_of(foreign_idp)
    assert redeem(trusting, assertion).status_code == 200
    replayed = redeem(trusting, assertion)
    assert error_of(replayed) == (400, "invalid_grant")
    assert "already been used" in replayed.text
    assert "access_token" not in replayed.text


def test_a_refused_presentation_does_not_burn_the_jti(
    trusting: FlaskClient, foreign_idp: JwksServer
) -> None:
    assertion = grant_of(foreign_idp)
    assert error_of(redeem(trusting, assertion, scope="openid")) == (400, "invalid_scope")
    assert redeem(trusting, assertion).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "typ"),
    [
        ({"aud": "https://another-as.example/"}, "oauth-id-jag+jwt"),
        ({"aud": [OWN_ISSUER, "https://another-as.example/"]}, "oauth-id-jag+jwt"),
        ({"client_id": "another-client"}, "oauth-id-jag+jwt"),
        ({"resource": "http://127.0.0.1:8001/other-mcp"}, "oauth-id-jag+jwt"),
        ({"resource": None}, "oauth-id-jag+jwt"),
        ({"exp": 1_000_000_000}, "oauth-id-jag+jwt"),
        ({"iat": 4_000_000_000}, "oauth-id-jag+jwt"),
        ({"jti": None}, "oauth-id-jag+jwt"),
        ({"sub": None}, "oauth-id-jag+jwt"),
        ({}, "JWT"),
        ({}, None),
        ({"iss": OWN_ISSUER}, "oauth-id-jag+jwt"),
        ({"iss": "https://untrusted-idp.example"}, "oauth-id-jag+jwt"),
    ],
)
def test_an_id_jag_with_one_defect_is_refused(
    trusting: FlaskClient,
    foreign_idp: JwksServer,
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, Any],
    typ: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    assertion = grant_of(foreign_idp, typ=typ, **overrides)
    response = redeem(trusting, assertion)
    assert error_of(response) == (400, "invalid_grant")
    assert "access_token" not in response.text
    assert assertion not in caplog.text and assertion.split(".")[2] not in caplog.text


def test_an_array_aud_of_exactly_this_issuer_is_accepted(
    trusting: FlaskClient, foreign_idp: JwksServer
) -> None:
    assert redeem(trusting, grant_of(foreign_idp, aud=[OWN_ISSUER])).status_code == 200


def test_an_id_jag_signed_by_another_key_is_refused(
    trusting: FlaskClient, foreign_idp: JwksServer
) -> None:
    claims = id_jag_claims(foreign_idp.issuer, OWN_ISSUER, ENTERPRISE_CLIENT[0], RESOURCE)
    forged = sign_id_jag(signing_key(1), "idp-kid", claims)
    assert error_of(redeem(trusting, forged)) == (400, "invalid_grant")


def test_the_resource_parameter_must_be_the_id_jags(
    trusting: FlaskClient, foreign_idp: JwksServer
) -> None:
    other = redeem(trusting, grant_of(foreign_idp), resource="http://127.0.0.1:8001/other")
    assert error_of(other) == (400, "invalid_target")
    same = redeem(trusting, grant_of(foreign_idp), resource=RESOURCE)
    assert same.status_code == 200


def test_the_scope_is_narrowed_never_widened(
    trusting: FlaskClient, foreign_idp: JwksServer
) -> None:
    wider = redeem(trusting, grant_of(foreign_idp), scope=f"{RESOURCE}/tools {RESOURCE}/admin")
    assert error_of(wider) == (400, "invalid_scope")
    both = f"{RESOURCE}/tools {RESOURCE}/admin openid"
    narrowed = redeem(trusting, grant_of(foreign_idp, scope=both), scope=f"{RESOURCE}/admin")
    assert (narrowed.json or {})["scope"] == f"{RESOURCE}/admin"
    unlisted = redeem(trusting, grant_of(foreign_idp, scope=both))
    assert (unlisted.json or {})["scope"] == f"{RESOURCE}/tools {RESOURCE}/admin"


@pytest.mark.parametrize(
    ("auth", "data", "expected"),
    [
        (None, {"client_id": DEMO_CLIENT}, (401, "invalid_client")),
        (("code-only", "code-only-s"), {}, (400, "unauthorized_client")),
        ((ENTERPRISE_CLIENT[0], "wrong-secret"), {}, (401, "invalid_client")),
    ],
)
def test_only_a_confidential_client_allowed_the_grant_may_redeem(
    trusting: FlaskClient,
    foreign_idp: JwksServer,
    auth: tuple[str, str] | None,
    data: dict[str, str],
    expected: tuple[int, str],
) -> None:
    claims_client = auth[0] if auth else DEMO_CLIENT
    claims = id_jag_claims(foreign_idp.issuer, OWN_ISSUER, claims_client, RESOURCE)
    response = redeem(trusting, sign_id_jag(signing_key(0), "idp-kid", claims), auth, **data)
    assert error_of(response) == expected
