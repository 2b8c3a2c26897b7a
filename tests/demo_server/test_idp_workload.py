"""Workload identity federation at the local authorization server (MCP SEP-1933; RFC 7523 §3):
``--trust-workload ISSUER=JWKS_FILE`` and the JWT bearer grant for clients allowed ``workload-jwt``,
through Flask's test client. The workload issuer's keys are in a JWKS file, as a cluster's
exported key set would be: no network here."""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from werkzeug.test import TestResponse

from demo_server.idp import ClientConfig, IdpSettings, create_app
from demo_server.idp import command as idp_command
from demo_server.idp.config_file import ConfigError, load_config
from demo_server.idp.extension_settings import EnterpriseSettings, TrustedIdp
from demo_server.idp.keys import SigningKeys
from tests.support.enterprise_client import id_jag_claims, sign_id_jag, unverified_claims
from tests.support.jwt_issuer import signing_key
from tests.support.workload_jwt import JWT_BEARER, WorkloadIssuer

POOL = "us-east-1_Demo00001"
OWN_ISSUER = f"http://127.0.0.1:9000/{POOL}"
TOKEN_ENDPOINT = "http://127.0.0.1:9000/oauth2/token"
RESOURCE = "http://127.0.0.1:8000/mcp"
TOOLS, ADMIN = f"{RESOURCE}/tools", f"{RESOURCE}/admin"
WORKLOAD_ISSUER = "https://cluster.example/workloads"
OTHER_ISSUER = "https://ci.example/oidc"
WORKLOAD = "demo-workload"
PINNED = ("pinned-workload", "system:serviceaccount:ci:agent")
CONFIDENTIAL = ("confidential-workload", "confidential-secret-canary-8d2e")


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys.generate()


@pytest.fixture(scope="module")
def platform() -> WorkloadIssuer:
    return WorkloadIssuer(WORKLOAD_ISSUER)


@pytest.fixture(scope="module")
def other_platform() -> WorkloadIssuer:
    return WorkloadIssuer(OTHER_ISSUER, ECKey.generate_key("P-256"), kid="ci-kid")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def clients() -> tuple[ClientConfig, ...]:
    return (
        ClientConfig(WORKLOAD, (), (TOOLS, ADMIN, "openid"), allowed_flows=("workload-jwt",)),
        ClientConfig(
            PINNED[0], (), (TOOLS,), allowed_flows=("workload-jwt",), workload_subjects=PINNED[1:]
        ),
        ClientConfig(
            CONFIDENTIAL[0],
            (),
            (TOOLS,),
            client_secret=CONFIDENTIAL[1],
            allowed_flows=("workload-jwt",),
        ),
        ClientConfig("m2m-only", (), (TOOLS,), client_secret="m2m-s", allowed_flows=("code",)),
    )


def settings_trusting(
    keys: SigningKeys, clock: Clock, tmp_path: Path, *platforms: WorkloadIssuer
) -> IdpSettings:
    trusted = tuple(
        TrustedIdp(p.issuer, jwks_file=str(p.write_jwks(tmp_path / f"jwks-{n}.json")))
        for n, p in enumerate(platforms)
    )
    return IdpSettings(
        keys=keys,
        clock=clock,
        clients=clients(),
        enterprise=EnterpriseSettings(trusted_workloads=trusted),
    )


@pytest.fixture
def trusting(
    keys: SigningKeys,
    clock: Clock,
    tmp_path: Path,
    platform: WorkloadIssuer,
    other_platform: WorkloadIssuer,
) -> FlaskClient:
    settings = settings_trusting(keys, clock, tmp_path, platform, other_platform)
    return create_app(settings).test_client()


def redeem(
    client: FlaskClient,
    assertion: str,
    client_id: str | None = WORKLOAD,
    auth: tuple[str, str] | None = None,
    **extra: str,
) -> TestResponse:
    data = {"grant_type": JWT_BEARER, "assertion": assertion, **extra}
    if client_id is not None and auth is None:
        data["client_id"] = client_id
    return client.post("/oauth2/token", data=data, auth=auth)


def error_of(response: TestResponse) -> tuple[int, str, str]:
    body = response.json or {}
    return response.status_code, str(body.get("error")), str(body.get("error_description"))


def test_a_workload_jwt_is_redeemed_for_a_machine_token_naming_the_workload(
    trusting: FlaskClient, platform: WorkloadIssuer
) -> None:
    response = redeem(trusting, platform.token(OWN_ISSUER), resource=RESOURCE)
    assert response.status_code == 200, response.text
    body = dict(response.json or {})
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == f"{TOOLS} {ADMIN}"  # the client's custom scopes, no openid
    assert "refresh_token" not in body and "id_token" not in body
    claims = unverified_claims(body["access_token"])
    assert claims["iss"] == OWN_ISSUER and claims["aud"] == RESOURCE
    assert claims["client_id"] == WORKLOAD and claims["token_use"] == "access"
    assert claims["workload"] == {"iss": WORKLOAD_ISSUER, "sub": "system:serviceaccount:ci:agent"}
    assert uuid.UUID(claims["sub"])  # pairwise per (pool, issuer, subject), not the raw sub
    assert "username" not in claims and "origin_jti" not in claims


def test_the_subject_is_stable_per_issuer_and_subject(
    trusting: FlaskClient, platform: WorkloadIssuer, other_platform: WorkloadIssuer
) -> None:
    def sub_of(issuer: WorkloadIssuer, subject: str) -> str:
        response = redeem(trusting, issuer.token(OWN_ISSUER, sub=subject))
        assert response.status_code == 200, response.text
        return str(unverified_claims((response.json or {})["access_token"])["sub"])

    first = sub_of(platform, "agent-a")
    assert sub_of(platform, "agent-a") == first  # a new JWT of the same workload
    assert sub_of(platform, "agent-b") != first
    assert sub_of(other_platform, "agent-a") != first  # another tenant's equal subject


def test_aud_may_be_the_token_endpoint_or_an_array_naming_this_server(
    trusting: FlaskClient, platform: WorkloadIssuer
) -> None:
    for aud in (TOKEN_ENDPOINT, [OWN_ISSUER], ["https://another.example", TOKEN_ENDPOINT]):
        response = redeem(trusting, platform.token(aud))
        assert response.status_code == 200, (aud, response.text)


def test_an_es256_workload_jwt_is_accepted(
    trusting: FlaskClient, other_platform: WorkloadIssuer
) -> None:
    assert redeem(trusting, other_platform.token(OWN_ISSUER)).status_code == 200


def test_clock_skew_within_the_leeway_is_tolerated(
    trusting: FlaskClient, platform: WorkloadIssuer, clock: Clock
) -> None:
    now = int(clock.now)
    skewed = platform.token(OWN_ISSUER, exp=now - 20, iat=now + 20, nbf=now + 20)
    assert redeem(trusting, skewed).status_code == 200


class FromNow(int):
    """A time claim this many seconds from when the test runs (not from collection: a full
    run takes long enough for a collection-time "future" to be past)."""

    def at(self) -> int:
        return int(time.time()) + int(self)


@pytest.mark.parametrize(
    ("overrides", "described"),
    [
        ({"iss": "https://untrusted.example"}, "issuer is not trusted"),
        ({"iss": OWN_ISSUER}, "issuer is not trusted"),
        ({"iss": None}, "issuer is not trusted"),
        ({"sub": None}, "has no sub"),
        ({"sub": ""}, "has no sub"),
        ({"sub": 42}, "has no sub"),
        ({"aud": None}, "aud must be"),
        ({"aud": "https://another-as.example/"}, "aud must be"),
        ({"aud": [RESOURCE, "https://another-as.example/"]}, "aud must be"),
        ({"aud": f"http://127.0.0.1:9000/{POOL}/"}, "aud must be"),
        ({"exp": None}, "no numeric exp"),
        ({"exp": "600"}, "no numeric exp"),
        ({"exp": FromNow(-120)}, "has expired"),
        ({"nbf": FromNow(120)}, "nbf is in the future"),
        ({"iat": FromNow(120)}, "iat is in the future"),
        ({"iat": "yesterday"}, "iat is not a number"),
        ({"jti": None}, "has no jti"),
        ({"jti": ""}, "has no jti"),
    ],
)
def test_a_workload_jwt_with_one_defective_claim_is_refused(
    trusting: FlaskClient,
    platform: WorkloadIssuer,
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, Any],
    described: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    claims = platform.claims(OWN_ISSUER)
    claims.update({k: v.at() if isinstance(v, FromNow) else v for k, v in overrides.items()})
    assertion = platform.sign({k: v for k, v in claims.items() if v is not None})
    status, error, description = error_of(redeem(trusting, assertion))
    assert (status, error) == (400, "invalid_grant")
    assert described in description
    assert assertion.split(".")[2] not in caplog.text


def forgeries(platform: WorkloadIssuer) -> dict[str, tuple[str, str]]:
    claims = platform.claims(OWN_ISSUER)
    return {
        "another key, same kid": (platform.sign(claims, key=signing_key(3)), "does not verify"),
        "another key, no kid": (
            platform.sign(claims, kid=None, key=signing_key(3)),
            "does not verify",
        ),
        "an unknown kid": (platform.sign(claims, kid="rotated-away"), "does not verify"),
        "alg none": (platform.unsigned(claims), "alg is not accepted"),
        "HS256 keyed with the public key": (
            platform.hs256_with_public_key(claims),
            "alg is not accepted",
        ),
        "typed as an ID-JAG": (platform.sign(claims, typ="oauth-id-jag+jwt"), "typ is not JWT"),
        "typed as an access token": (platform.sign(claims, typ="at+jwt"), "typ is not JWT"),
        "a tampered payload": (tampered(platform.sign(claims)), "does not verify"),
        "not a JWT": ("not-a-jwt", "not a JWT"),
        "too long": ("a" * 20_000, "too long"),
    }


def tampered(token: str) -> str:
    import base64

    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{raw}.{signature}"


@pytest.mark.parametrize(
    "forgery",
    [
        "another key, same kid",
        "another key, no kid",
        "an unknown kid",
        "alg none",
        "HS256 keyed with the public key",
        "typed as an ID-JAG",
        "typed as an access token",
        "a tampered payload",
        "not a JWT",
        "too long",
    ],
)
def test_a_forged_or_mistyped_assertion_is_refused(
    trusting: FlaskClient, platform: WorkloadIssuer, forgery: str
) -> None:
    assertion, described = forgeries(platform)[forgery]
    status, error, description = error_of(redeem(trusting, assertion))
    assert (status, error) == (400, "invalid_grant"), description
    assert described in description


def test_a_workload_jwt_is_redeemed_once(trusting: FlaskClient, platform: WorkloadIssuer) -> None:
    assertion = platform.token(OWN_ISSUER)
    assert redeem(trusting, assertion).status_code == 200
    status, error, description = error_of(redeem(trusting, assertion))
    assert (status, error) == (400, "invalid_grant") and "already been used" in description
    # The same jti in a new JWT is the same credential presented again.
    again = platform.token(OWN_ISSUER, jti=unverified_claims(assertion)["jti"], sub="other")
    assert error_of(redeem(trusting, again))[1] == "invalid_grant"


def test_a_refused_presentation_does_not_use_the_jwt_up(
    trusting: FlaskClient, platform: WorkloadIssuer
) -> None:
    assertion = platform.token(OWN_ISSUER)
    assert error_of(redeem(trusting, assertion, scope="openid"))[:2] == (400, "invalid_scope")
    assert error_of(redeem(trusting, assertion, client_id="m2m-only"))[1] == "invalid_client"
    assert redeem(trusting, assertion).status_code == 200


def test_the_scope_is_limited_as_for_machine_clients(
    trusting: FlaskClient, platform: WorkloadIssuer
) -> None:
    narrowed = redeem(trusting, platform.token(OWN_ISSUER), scope=TOOLS)
    assert (narrowed.json or {})["scope"] == TOOLS
    for scope in ("openid", f"{TOOLS} email", "http://127.0.0.1:8001/mcp/tools"):
        refused = redeem(trusting, platform.token(OWN_ISSUER), scope=scope)
        assert error_of(refused)[:2] == (400, "invalid_scope"), scope
    pinned = redeem(trusting, platform.token(OWN_ISSUER), client_id=PINNED[0], scope=ADMIN)
    assert error_of(pinned)[:2] == (400, "invalid_scope")  # not this client's scope


def test_an_unknown_resource_is_refused(trusting: FlaskClient, platform: WorkloadIssuer) -> None:
    other = redeem(trusting, platform.token(OWN_ISSUER), resource="http://127.0.0.1:8001/mcp")
    assert error_of(other)[:2] == (400, "invalid_target")


def test_a_client_may_accept_only_its_workload_subjects(
    trusting: FlaskClient, platform: WorkloadIssuer
) -> None:
    listed = redeem(trusting, platform.token(OWN_ISSUER), client_id=PINNED[0])
    assert listed.status_code == 200, listed.text
    stranger = platform.token(OWN_ISSUER, sub="system:serviceaccount:ci:intruder")
    status, error, description = error_of(redeem(trusting, stranger, client_id=PINNED[0]))
    assert (status, error) == (400, "invalid_grant") and "subject" in description


@pytest.mark.parametrize(
    ("client_id", "auth", "expected"),
    [
        (None, None, (401, "invalid_client")),  # no client named
        ("nobody", None, (400, "invalid_client")),  # no Authorization header: 400
        ("m2m-only", ("m2m-only", "m2m-s"), (400, "unauthorized_client")),
        (CONFIDENTIAL[0], None, (401, "invalid_client")),  # a confidential client: its secret
        (CONFIDENTIAL[0], (CONFIDENTIAL[0], "wrong"), (401, "invalid_client")),
    ],
)
def test_only_a_client_allowed_workload_jwt_may_redeem(
    trusting: FlaskClient,
    platform: WorkloadIssuer,
    client_id: str | None,
    auth: tuple[str, str] | None,
    expected: tuple[int, str],
) -> None:
    response = redeem(trusting, platform.token(OWN_ISSUER), client_id=client_id, auth=auth)
    assert error_of(response)[:2] == expected
    assert "access_token" not in response.text


def test_a_confidential_client_redeems_with_its_secret(
    trusting: FlaskClient, platform: WorkloadIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assertion = platform.token(OWN_ISSUER)
    response = redeem(trusting, assertion, auth=CONFIDENTIAL)
    assert response.status_code == 200, response.text
    access_token = (response.json or {})["access_token"]
    assert "redeemed a workload JWT" in caplog.text
    for secret in (assertion, access_token, CONFIDENTIAL[1]):
        assert secret not in caplog.text and secret.split(".")[-1] not in caplog.text


def test_keys_are_reread_from_the_file_for_an_unknown_kid_and_missing_keys_refuse(
    keys: SigningKeys, clock: Clock, tmp_path: Path, platform: WorkloadIssuer
) -> None:
    client = create_app(settings_trusting(keys, clock, tmp_path, platform)).test_client()
    rotated = WorkloadIssuer(WORKLOAD_ISSUER, signing_key(3), kid="workload-kid-2")
    refused = redeem(client, rotated.token(OWN_ISSUER))
    assert "does not verify" in error_of(refused)[2]
    rotated.write_jwks(tmp_path / "jwks-0.json")  # the platform rotated its key
    assert redeem(client, rotated.token(OWN_ISSUER)).status_code == 200
    (tmp_path / "jwks-0.json").unlink()
    gone = redeem(client, WorkloadIssuer(WORKLOAD_ISSUER, kid="kid-3").token(OWN_ISSUER))
    assert error_of(gone)[:3] == (400, "invalid_grant", "The issuer's keys are unavailable.")


@pytest.mark.parametrize("content", [None, "not json", '{"keys": []}', '{"keys": [{"kty": 1}]}'])
def test_an_unusable_jwks_file_stops_the_start(
    keys: SigningKeys, clock: Clock, tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_text(content)
    trusted = EnterpriseSettings(
        trusted_workloads=(TrustedIdp(WORKLOAD_ISSUER, jwks_file=str(path)),)
    )
    with pytest.raises(ValueError, match=WORKLOAD_ISSUER):
        create_app(IdpSettings(keys=keys, clock=clock, enterprise=trusted))


def test_discovery_offers_the_grant_without_naming_the_issuers(trusting: FlaskClient) -> None:
    doc = trusting.get(f"/{POOL}/.well-known/openid-configuration").json or {}
    assert JWT_BEARER in doc["grant_types_supported"]
    assert "authorization_grant_profiles_supported" not in doc  # no ID-JAGs here
    assert WORKLOAD_ISSUER not in json.dumps(doc)


def test_without_trust_the_grant_is_unsupported(
    keys: SigningKeys, clock: Clock, platform: WorkloadIssuer
) -> None:
    plain = create_app(IdpSettings(keys=keys, clock=clock, clients=clients())).test_client()
    response = redeem(plain, platform.token(OWN_ISSUER))
    assert error_of(response)[:2] == (400, "unsupported_grant_type")


def test_id_jags_and_workload_jwts_share_the_grant(
    keys: SigningKeys, clock: Clock, tmp_path: Path, platform: WorkloadIssuer
) -> None:
    """With --trust-idp too, an ID-JAG still follows the ID-JAG rules, a workload JWT these."""
    idp = WorkloadIssuer("https://idp.example", signing_key(0), kid="idp-kid")
    enterprise_client = ClientConfig(
        "ent", (), (TOOLS,), client_secret="ent-s", allowed_flows=("jwt-bearer",)
    )
    settings = settings_trusting(keys, clock, tmp_path, platform)
    idp_file = str(idp.write_jwks(tmp_path / "idp-jwks.json"))
    enterprise = replace(
        settings.enterprise, trusted_idps=(TrustedIdp(idp.issuer, jwks_file=idp_file),)
    )
    clients = (*settings.clients, enterprise_client)
    both = create_app(replace(settings, enterprise=enterprise, clients=clients)).test_client()

    id_jag = sign_id_jag(idp.key, "idp-kid", id_jag_claims(idp.issuer, OWN_ISSUER, "ent", RESOURCE))
    redeemed = redeem(both, id_jag, auth=("ent", "ent-s"))
    assert redeemed.status_code == 200, redeemed.text
    assert unverified_claims((redeemed.json or {})["access_token"])["username"] == (
        "enterprise-user-1"
    )
    # An ID-JAG's rules for an ID-JAG: the workload client is not its client.
    assert error_of(redeem(both, id_jag))[:2] == (401, "invalid_client")
    assert redeem(both, platform.token(OWN_ISSUER)).status_code == 200
    doc = both.get(f"/{POOL}/.well-known/openid-configuration").json or {}
    assert doc["grant_types_supported"].count(JWT_BEARER) == 1


# --- configuration ------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    idp_command.configure_parser(parser)
    return parser.parse_args(list(argv))


def test_the_option_takes_a_jwks_file_a_url_or_discovery(tmp_path: Path) -> None:
    args = parse(
        "--trust-workload", f"{WORKLOAD_ISSUER}={tmp_path}/jwks.json",
        "--trust-workload", f"{OTHER_ISSUER}=https://ci.example/oidc/jwks",
        "--trust-workload", "https://gitlab.example",
    )  # fmt: skip
    trusted = idp_command.settings_from_args(args).enterprise.trusted_workloads
    assert trusted == (
        TrustedIdp(WORKLOAD_ISSUER, jwks_file=f"{tmp_path}/jwks.json"),
        TrustedIdp(OTHER_ISSUER, jwks_url="https://ci.example/oidc/jwks"),
        TrustedIdp("https://gitlab.example"),
    )


@pytest.mark.parametrize(
    "value",
    ["", "=jwks.json", "kubernetes/serviceaccount", "has space=jwks.json", "https://x=https://"],
)
def test_the_option_refuses_what_is_not_an_issuer_and_keys(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse("--trust-workload", value)
    assert "--trust-workload" in capsys.readouterr().err


def test_an_issuer_without_url_is_trusted_with_its_jwks_file(tmp_path: Path) -> None:
    args = parse("--trust-workload", f"kubernetes/serviceaccount={tmp_path}/k.json")
    (trusted,) = idp_command.settings_from_args(args).enterprise.trusted_workloads
    assert trusted.issuer == "kubernetes/serviceaccount"


@pytest.mark.parametrize(
    ("enterprise", "message"),
    [
        (EnterpriseSettings(trusted_workloads=(TrustedIdp(OWN_ISSUER, "https://x/j"),)), "own"),
        (
            EnterpriseSettings(
                trusted_idps=(TrustedIdp(OTHER_ISSUER),),
                trusted_workloads=(TrustedIdp(OTHER_ISSUER),),
            ),
            "both",
        ),
        (
            EnterpriseSettings(
                trusted_workloads=(TrustedIdp(OTHER_ISSUER), TrustedIdp(OTHER_ISSUER, "https://j"))
            ),
            "twice",
        ),
    ],
)
def test_settings_refuse_confusable_trust(enterprise: EnterpriseSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IdpSettings(enterprise=enterprise).validate()


def test_the_config_file_trusts_workloads_and_pins_subjects(tmp_path: Path) -> None:
    config = tmp_path / "idp.toml"
    config.write_text(
        f"""
[[clients]]
client_id = "ci-agent"
allowed_flows = ["workload-jwt"]
allowed_scopes = ["{TOOLS}"]
workload_subjects = ["repo:org/app:ref:refs/heads/main"]

[[trusted_workloads]]
issuer = "{WORKLOAD_ISSUER}"
jwks = "keys/jwks.json"

[[trusted_workloads]]
issuer = "{OTHER_ISSUER}"
jwks = "https://ci.example/oidc/jwks"

[[trusted_workloads]]
issuer = "https://token.actions.githubusercontent.com"
"""
    )
    loaded = load_config(config)
    (client,) = loaded.clients
    assert client.allowed_flows == ("workload-jwt",) and client.client_secret is None
    assert client.workload_subjects == ("repo:org/app:ref:refs/heads/main",)
    assert loaded.trusted_workloads == (
        TrustedIdp(WORKLOAD_ISSUER, jwks_file=str(tmp_path / "keys" / "jwks.json")),
        TrustedIdp(OTHER_ISSUER, jwks_url="https://ci.example/oidc/jwks"),
        TrustedIdp("https://token.actions.githubusercontent.com"),
    )
    args = parse("--config", str(config), "--trust-workload", "https://gitlab.example")
    trusted = idp_command.settings_from_args(args).enterprise.trusted_workloads
    assert [t.issuer for t in trusted][:2] == ["https://gitlab.example", WORKLOAD_ISSUER]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('issuer = "not a url"', "issuer"),
        ('issuer = "https://x"\njwks = 3', "JWKS"),
        ('issuer = "https://x"\njwk = "typo.json"', "unknown keys"),
        ('jwks = "k.json"', "issuer"),
    ],
)
def test_the_config_file_refuses_a_bad_trusted_workload(
    tmp_path: Path, table: str, message: str
) -> None:
    config = tmp_path / "idp.toml"
    config.write_text(f"[[trusted_workloads]]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(config)
