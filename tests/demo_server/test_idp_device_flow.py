"""The device authorization grant (RFC 8628) of ``mcp-demo-server idp --device-flow``, through
Flask's test client with a fake clock: every answer of §3.5, the verification page, resource."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.security import generate_password_hash

from demo_server.idp import IdpSettings, UserConfig, create_app
from demo_server.idp.device import normalise_user_code
from demo_server.idp.keys import SigningKeys
from tests.support.idp_flow import DEMO_CLIENT, MCP_RESOURCE, csrf_from

POOL = "us-east-1_Demo00001"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "pw-for-device-tests"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys.generate()


class Device:
    """The app, a clock, and the two sides: the polling client and the user's browser."""

    def __init__(self, keys: SigningKeys, **overrides: Any) -> None:
        self.clock = Clock()
        cheap = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
        settings = IdpSettings(
            demo_password=PASSWORD,
            keys=keys,
            clock=self.clock,
            users=(UserConfig("demo", cheap, "demo@example.com"),),
            **{"device_flow": True, "device_interval": 5, "device_code_ttl": 600, **overrides},
        )
        app = create_app(settings)
        self.client = app.test_client()  # the device
        self.browser = app.test_client()  # the user

    def start(self, **extra: str) -> Any:
        data = {"client_id": DEMO_CLIENT, "scope": "openid", **extra}
        return self.client.post("/oauth2/device_authorization", data=data)

    def poll(self, device_code: str, **extra: str) -> Any:
        data = {"grant_type": GRANT, "device_code": device_code, "client_id": DEMO_CLIENT}
        return self.client.post("/oauth2/token", data={**data, **extra})

    def sign_in(self, user_code: str) -> Any:
        """Open verification_uri_complete, sign in on the way; the approval page."""
        first = self.browser.get(f"/device?user_code={user_code}")
        assert first.status_code == 302 and first.headers["Location"].startswith("/login?")
        login = first.headers["Location"]
        form = self.browser.get(login)
        posted = self.browser.post(
            login,
            data={"csrf_token": csrf_from(form.text), "username": "demo", "password": PASSWORD},
        )
        assert posted.status_code == 302, posted.text
        return self.browser.get(posted.headers["Location"])

    def decide(self, user_code: str, decision: str) -> Any:
        page = self.sign_in(user_code)
        assert page.status_code == 200, page.text
        data = {"csrf_token": csrf_from(page.text), "user_code": user_code, "decision": decision}
        return self.browser.post("/device", data=data)

    def claims(self, token: str) -> dict[str, Any]:
        jwks = self.client.get(f"/{POOL}/.well-known/jwks.json").json
        keyset = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        return dict(jwt.decode(token, keyset, algorithms=["RS256"]).claims)


@pytest.fixture
def device(keys: SigningKeys) -> Device:
    return Device(keys)


def test_discovery_advertises_the_endpoint_only_with_device_flow(keys: SigningKeys) -> None:
    path = f"/{POOL}/.well-known/openid-configuration"
    on = Device(keys).client.get(path).json
    off = Device(keys, device_flow=False).client.get(path).json

    assert (
        on["device_authorization_endpoint"] == "http://127.0.0.1:9000/oauth2/device_authorization"
    )
    assert "device_authorization_endpoint" not in off


def test_without_device_flow_the_endpoints_do_not_exist(keys: SigningKeys) -> None:
    off = Device(keys, device_flow=False)

    assert off.start().status_code == 404
    assert off.poll("x").json["error"] == "unsupported_grant_type"
    assert off.browser.get("/device").status_code == 404


def test_device_authorization_response_has_every_field(device: Device) -> None:
    response = device.start()

    assert response.status_code == 200, response.text
    body = response.json
    assert body["verification_uri"] == "http://127.0.0.1:9000/device"
    assert (
        body["verification_uri_complete"]
        == f"{body['verification_uri']}?user_code={body['user_code']}"
    )
    assert body["expires_in"] == 600 and body["interval"] == 5
    assert normalise_user_code(body["user_code"]) == body["user_code"]
    assert len(body["device_code"]) >= 32
    assert response.headers["Cache-Control"] == "no-store"


def test_pending_then_approved_issues_tokens_once(device: Device) -> None:
    started = device.start(scope=f"openid {MCP_RESOURCE}/tools").json

    assert device.poll(started["device_code"]).json["error"] == "authorization_pending"
    approved = device.decide(started["user_code"], "approve")
    assert approved.status_code == 200 and "go back to your device" in approved.text
    device.clock.now += 5
    tokens = device.poll(started["device_code"])

    assert tokens.status_code == 200, tokens.text
    assert {"access_token", "id_token", "refresh_token"} <= set(tokens.json)
    claims = device.claims(tokens.json["access_token"])
    assert claims["username"] == "demo" and claims["client_id"] == DEMO_CLIENT
    assert claims["scope"] == f"openid {MCP_RESOURCE}/tools"
    device.clock.now += 5
    again = device.poll(started["device_code"])
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"


def test_polling_too_fast_is_slow_down_and_the_interval_grows_by_five(device: Device) -> None:
    code = device.start().json["device_code"]

    assert device.poll(code).json["error"] == "authorization_pending"
    device.clock.now += 4
    assert device.poll(code).json["error"] == "slow_down"  # interval now 10
    device.clock.now += 9
    assert device.poll(code).json["error"] == "slow_down"  # 9 < 10; interval now 15
    device.clock.now += 15
    answer = device.poll(code)
    assert answer.status_code == 400 and answer.json["error"] == "authorization_pending"


def test_denied_is_access_denied_on_every_later_poll(device: Device) -> None:
    started = device.start().json

    denied = device.decide(started["user_code"], "deny")
    assert denied.status_code == 200 and "not given access" in denied.text
    for _ in range(2):
        device.clock.now += 5
        answer = device.poll(started["device_code"])
        assert answer.status_code == 400 and answer.json["error"] == "access_denied"
        assert "access_token" not in answer.json


def test_after_expires_in_the_poll_is_expired_token_and_approval_impossible(
    device: Device,
) -> None:
    started = device.start().json
    device.clock.now += 600

    answer = device.poll(started["device_code"])
    late = device.sign_in(started["user_code"])

    assert answer.status_code == 400 and answer.json["error"] == "expired_token"
    assert late.status_code == 400 and "unknown, expired or already used" in late.text


def test_a_code_is_decided_once(device: Device) -> None:
    started = device.start().json
    page = device.sign_in(started["user_code"])
    form = {"csrf_token": csrf_from(page.text), "user_code": started["user_code"]}

    first = device.browser.post("/device", data={**form, "decision": "deny"})
    second = device.browser.post("/device", data={**form, "decision": "approve"})

    assert first.status_code == 200 and second.status_code == 400
    device.clock.now += 5
    assert device.poll(started["device_code"]).json["error"] == "access_denied"


def test_the_user_code_is_compared_loosely(device: Device) -> None:
    started = device.start().json
    typed = started["user_code"].lower().replace("-", " ")

    page = device.sign_in(typed)

    assert page.status_code == 200 and started["user_code"] in page.text
    assert DEMO_CLIENT in page.text and 'id="approve"' in page.text


def test_decisions_need_the_csrf_token(device: Device) -> None:
    started = device.start().json
    device.sign_in(started["user_code"])

    forged = device.browser.post(
        "/device", data={"user_code": started["user_code"], "decision": "approve"}
    )

    assert forged.status_code == 400
    device.clock.now += 5
    assert device.poll(started["device_code"]).json["error"] == "authorization_pending"


def test_the_device_code_of_another_client_is_refused(device: Device) -> None:
    started = device.start().json
    device.decide(started["user_code"], "approve")

    other = device.poll(started["device_code"], client_id="demo-m2m")

    assert other.status_code in (400, 401)
    assert "access_token" not in other.json


def test_a_client_not_allowed_the_flow_is_unauthorized_client(device: Device) -> None:
    response = device.client.post(
        "/oauth2/device_authorization", data={"client_id": "demo-m2m", "client_secret": "x"}
    )

    assert response.json["error"] in ("invalid_client", "unauthorized_client")
    assert "device_code" not in response.json


def test_unknown_scope_is_invalid_scope(device: Device) -> None:
    response = device.start(scope="openid http://elsewhere/tools")

    assert response.status_code == 400 and response.json["error"] == "invalid_scope"


def test_resource_is_bound_to_the_tokens(device: Device) -> None:
    started = device.start(resource=MCP_RESOURCE).json
    device.decide(started["user_code"], "approve")
    device.clock.now += 5

    tokens = device.poll(started["device_code"]).json

    assert device.claims(tokens["access_token"])["aud"] == MCP_RESOURCE


def test_a_token_request_resource_must_be_the_authorized_one(keys: SigningKeys) -> None:
    other = "http://127.0.0.1:8001/mcp"
    from demo_server.idp.settings import ResourceServerConfig

    servers = (ResourceServerConfig(MCP_RESOURCE), ResourceServerConfig(other))
    device = Device(keys, resource_servers=servers)
    started = device.start(resource=MCP_RESOURCE).json
    device.decide(started["user_code"], "approve")
    device.clock.now += 5

    wrong = device.poll(started["device_code"], resource=other)

    assert wrong.status_code == 400 and wrong.json["error"] == "invalid_target"


def test_an_unknown_resource_is_invalid_target(device: Device) -> None:
    response = device.start(resource="http://127.0.0.1:1/nope")

    assert response.status_code == 400 and response.json["error"] == "invalid_target"


def test_the_verification_page_escapes_what_it_is_given(device: Device) -> None:
    device.sign_in("AAAA-AAAA")  # any code: only to get a session

    page = device.browser.get("/device?user_code=<script>x</script>")

    assert "<script>x" not in page.text and "&lt;script&gt;" in page.text


def test_the_verification_page_sends_a_signed_out_user_through_login(device: Device) -> None:
    page = device.browser.get("/device?user_code=BCDF-GHJK")

    assert page.status_code == 302
    location = urlsplit(page.headers["Location"])
    assert location.path == "/login" and "return_to=device" in location.query


def test_no_code_or_token_is_logged(device: Device, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    started = device.start().json
    device.decide(started["user_code"], "approve")
    device.clock.now += 5

    tokens = device.poll(started["device_code"]).json

    for secret in (started["device_code"], tokens["access_token"], tokens["refresh_token"]):
        assert secret not in caplog.text
