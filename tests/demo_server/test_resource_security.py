"""Token validation (signatures, claims, audience, JWKS, scopes, Host) against the running demo
MCP server: uvicorn thread, real HTTP, forged tokens signed with a test key whose JWKS a real
HTTP server on 127.0.0.1 publishes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx2
import pytest

from demo_server.resource import RunningResourceServer
from tests.support.jwt_issuer import JwksServer, TestIssuer, signing_key
from tests.support.procs import refusing_port
from tests.support.resource_server import (
    initialize_body,
    post_mcp,
    running_resource,
    tool_call_body,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(jwks: JwksServer) -> Iterator[RunningResourceServer]:
    with running_resource(jwks) as running:
        yield running


def resource_of(server: RunningResourceServer) -> str:
    return server.settings.resource_id


def assert_invalid_token(response: httpx2.Response, server: RunningResourceServer) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{server.settings.resource_metadata_url}"' in challenge
    assert "result" not in response.text


def test_valid_token_passes_the_gate(jwks: JwksServer, server: RunningResourceServer) -> None:
    """The positive control for every rejection below: same server, same key, good claims."""
    response = post_mcp(server.url, initialize_body(), jwks.issuer_obj.token(resource_of(server)))
    assert response.status_code == 200, response.text
    assert '"result"' in response.text


def tamper_payload(issuer: TestIssuer, resource: str) -> str:
    """A validly signed token whose payload is swapped for one with more scopes."""
    header, _, signature = issuer.token(resource).split(".")
    richer = issuer.sign(issuer.claims(resource, scope=f"{resource}/tools {resource}/admin"))
    return ".".join([header, richer.split(".")[1], signature])


def tamper_signature(issuer: TestIssuer, resource: str) -> str:
    header, payload, signature = issuer.token(resource).split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return ".".join([header, payload, signature[:middle] + flipped + signature[middle + 1 :]])


FORGERIES: dict[str, Callable[[TestIssuer, str], str]] = {
    "alg-none": lambda issuer, resource: issuer.unsigned(issuer.claims(resource)),
    "hs256-with-public-key": lambda issuer, resource: issuer.hs256_with_public_key(
        issuer.claims(resource)
    ),
    "tampered-payload": tamper_payload,
    "tampered-signature": tamper_signature,
    "other-key-same-kid": lambda issuer, resource: issuer.sign(
        issuer.claims(resource), key=signing_key(1)
    ),
    "not-a-jwt": lambda issuer, resource: "not-a-jwt",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_signatures_get_401_invalid_token(
    forgery: str, jwks: JwksServer, server: RunningResourceServer
) -> None:
    """#53: alg none, HS256 keyed with the public key, tampered signature or payload."""
    token = FORGERIES[forgery](jwks.issuer_obj, resource_of(server))
    assert_invalid_token(post_mcp(server.url, initialize_body(), token), server)


def now() -> int:
    return int(time.time())


BAD_CLAIMS: dict[str, Callable[[str], dict[str, object]]] = {
    "wrong-iss": lambda issuer: {"iss": "http://127.0.0.1:9/us-east-1_Other0001"},
    "iss-with-trailing-slash": lambda issuer: {"iss": issuer + "/"},
    "client-not-allowlisted": lambda issuer: {"client_id": "someone-else"},
    "id-token": lambda issuer: {"token_use": "id", "aud": "demo-broker", "client_id": None},
    "token-use-missing": lambda issuer: {"token_use": None},
    "expired": lambda issuer: {"exp": now() - 600, "iat": now() - 4200},
    "expired-beyond-skew": lambda issuer: {"exp": now() - 61},
    "nbf-in-future": lambda issuer: {"nbf": now() + 600},
    "iat-in-future": lambda issuer: {"iat": now() + 600},
    "no-exp": lambda issuer: {"exp": None},
    "no-scope": lambda issuer: {"scope": None},
    "aud-other-resource": lambda issuer: {"aud": "http://127.0.0.1:1/mcp"},
    "aud-other-list": lambda issuer: {"aud": ["http://127.0.0.1:1/mcp", "demo-broker"]},
}


@pytest.mark.parametrize("case", sorted(BAD_CLAIMS))
def test_tokens_with_bad_claims_get_401(
    case: str, jwks: JwksServer, server: RunningResourceServer
) -> None:
    """Wrong iss, client_id, token_use, exp or nbf, and an aud naming another resource."""
    issuer = jwks.issuer_obj
    token = issuer.sign(issuer.claims(resource_of(server), **BAD_CLAIMS[case](issuer.issuer)))
    assert_invalid_token(post_mcp(server.url, initialize_body(), token), server)


def test_aud_equal_to_this_resource_is_accepted(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    """Counterpart of the passthrough defence: Cognito adds aud = resource when asked."""
    token = jwks.issuer_obj.token(resource_of(server), aud=resource_of(server))
    assert post_mcp(server.url, initialize_body(), token).status_code == 200


def test_token_within_clock_skew_is_accepted(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    token = jwks.issuer_obj.token(resource_of(server), exp=now() - 5, nbf=now() + 5)
    assert post_mcp(server.url, initialize_body(), token).status_code == 200


def test_unknown_kid_fetches_jwks_once_per_window_then_401() -> None:
    """#56: forged kids cost at most one JWKS request per rate-limit window (30 s by default)."""
    with JwksServer() as jwks, running_resource(jwks) as server:
        issuer = jwks.issuer_obj
        resource = resource_of(server)
        stranger = issuer.sign(issuer.claims(resource), kid="unknown-kid", key=signing_key(1))
        for kid in ("unknown-kid", "another-unknown-kid", "third-unknown-kid"):
            forged = issuer.sign(issuer.claims(resource), kid=kid, key=signing_key(1))
            assert_invalid_token(post_mcp(server.url, initialize_body(), forged), server)
        assert_invalid_token(post_mcp(server.url, initialize_body(), stranger), server)
        assert jwks.jwks_requests == 1
        # The one fetch loaded the real key: a genuine token needs no further request.
        assert post_mcp(server.url, initialize_body(), issuer.token(resource)).status_code == 200
        assert jwks.jwks_requests == 1


def test_rotated_key_is_picked_up_by_the_kid_refetch() -> None:
    """Counterpart of the rate-limited JWKS refetch: the refetch is what makes key rotation work."""
    with (
        JwksServer() as jwks,
        running_resource(jwks, jwks_refetch_interval=0.0) as server,
    ):
        resource = resource_of(server)
        assert (
            post_mcp(server.url, initialize_body(), jwks.issuer_obj.token(resource)).status_code
            == 200
        )
        jwks.issuer_obj = TestIssuer(jwks.issuer, signing_key(2), kid="rotated-kid")
        response = post_mcp(server.url, initialize_body(), jwks.issuer_obj.token(resource))
        assert response.status_code == 200, response.text
        assert jwks.jwks_requests == 2


def test_jwks_down_gives_401_and_the_server_keeps_serving(jwks: JwksServer) -> None:
    """#56: nothing listens at the JWKS URL; tokens get 401, other requests still work."""
    with (
        refusing_port() as dead,
        running_resource(jwks, jwks_url=f"http://127.0.0.1:{dead}/jwks.json") as server,
    ):
        token = jwks.issuer_obj.token(resource_of(server))
        for _ in range(2):
            assert_invalid_token(post_mcp(server.url, initialize_body(), token), server)
        assert httpx2.get(server.settings.resource_metadata_url, timeout=5).status_code == 200
        assert post_mcp(server.url, initialize_body()).status_code == 401
        assert server.running


def test_jwks_going_down_later_keeps_cached_keys() -> None:
    """#56: once loaded, keys survive a JWKS outage (no revocation by flapping endpoint)."""
    with JwksServer() as own, running_resource(own, jwks_refetch_interval=0.0) as server:
        token = own.issuer_obj.token(resource_of(server))
        assert post_mcp(server.url, initialize_body(), token).status_code == 200
        own.stop()
        unknown = own.issuer_obj.sign(own.issuer_obj.claims(resource_of(server)), kid="nope")
        assert_invalid_token(post_mcp(server.url, initialize_body(), unknown), server)
        assert post_mcp(server.url, initialize_body(), token).status_code == 200


def test_step_up_tool_without_admin_scope_gets_403_naming_the_scopes(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    """#57: tools/call admin_report with only <resource>/tools → 403 insufficient_scope."""
    settings = server.settings
    token = jwks.issuer_obj.token(resource_of(server))
    response = post_mcp(server.url, tool_call_body("admin_report"), token)
    assert response.status_code == 403, response.text
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{settings.tools_scope} {settings.admin_scope}"' in challenge
    assert f'resource_metadata="{settings.resource_metadata_url}"' in challenge
    assert response.json()["error"] == "insufficient_scope"


def test_step_up_also_applies_inside_a_batch(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    token = jwks.issuer_obj.token(resource_of(server))
    batch = [tool_call_body("echo", {"text": "hi"}), tool_call_body("admin_report")]
    response = httpx2.post(
        server.url,
        json=batch,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        },
        timeout=10,
    )
    assert response.status_code == 403
    assert server.settings.admin_scope in response.headers["www-authenticate"]


def test_token_without_the_tools_scope_gets_403(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    """#57: <resource>/tools is needed for everything on the MCP endpoint."""
    token = jwks.issuer_obj.token(resource_of(server), scope="openid email")
    response = post_mcp(server.url, tool_call_body("echo", {"text": "x"}), token)
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{server.settings.tools_scope}"' in challenge


def test_admin_scope_passes_the_step_up_gate(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    scopes = " ".join(server.settings.scopes_supported)
    token = jwks.issuer_obj.token(resource_of(server), scope=scopes)
    response = post_mcp(server.url, tool_call_body("admin_report"), token)
    # Past the gate, the SDK wants a session first: anything but 401/403 proves the gate let it by.
    assert response.status_code not in (401, 403), response.text


REBINDING = {
    "evil-host": {"Host": "evil.example:80"},
    "evil-host-same-port": {"Host": "evil.example"},
    "evil-origin": {"Origin": "http://evil.example"},
    "null-origin": {"Origin": "null"},
    "other-loopback-port-origin": {"Origin": "http://127.0.0.1:1"},
}


@pytest.mark.parametrize("case", sorted(REBINDING))
@pytest.mark.parametrize("target", ["mcp", "prm", "prm-root"])
def test_non_localhost_host_or_origin_gets_4xx(
    case: str, target: str, jwks: JwksServer, server: RunningResourceServer
) -> None:
    """#58: DNS rebinding defence on the MCP endpoint and on the metadata routes, token or not."""
    headers = dict(REBINDING[case])
    if case == "evil-host-same-port":
        headers["Host"] = f"evil.example:{server.settings.port}"
    token = jwks.issuer_obj.token(resource_of(server))
    if target == "mcp":
        response = post_mcp(server.url, initialize_body(), token, headers=headers)
    else:
        url = server.settings.resource_metadata_url
        if target == "prm-root":
            url = server.settings.base_url + "/.well-known/oauth-protected-resource"
        response = httpx2.get(url, headers=headers, timeout=5)
    assert 400 <= response.status_code < 500, response.text
    assert "authorization_servers" not in response.text
    assert '"result"' not in response.text


def test_localhost_host_and_origin_are_accepted(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    port = server.settings.port
    headers = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
    token = jwks.issuer_obj.token(resource_of(server))
    assert post_mcp(server.url, initialize_body(), token, headers=headers).status_code == 200
