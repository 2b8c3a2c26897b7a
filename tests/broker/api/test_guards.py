"""Each guard of the token API (secret, Host, Origin, browser headers, relays, body size and
shape) against the running API over real HTTP."""

from __future__ import annotations

import json
import logging

import pytest

from tests.broker.api.conftest import Api
from tests.broker.api.fakes import CANARY_ACCESS, SERVER_A, build_request, raw_request

pytestmark = pytest.mark.integration

BODY = json.dumps({"resource": SERVER_A}).encode()


def post_token(api: Api, headers: dict[str, str], host: str | None = "default", body: bytes = BODY):
    base = {"X-MCP-Broker": "1", "Content-Type": "application/json"}
    request = build_request("POST", "/v1/token", api.port, {**base, **headers}, body, host)
    return raw_request(api.port, request)


def auth(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.secret}"}


def assert_refused(response, status: int) -> None:
    assert response.status == status, response.body
    assert CANARY_ACCESS.encode() not in response.body
    doc = json.loads(response.body)
    assert set(doc) == {"error", "error_description"}
    assert not any(n.startswith("access-control-") for n in response.header_names())


def test_a_valid_request_gets_a_token(api: Api) -> None:  # the baseline the guards refuse from
    response = post_token(api, auth(api))
    assert response.status == 200
    assert CANARY_ACCESS.encode() in response.body


# -- #1, #2: the client secret -----------------------------------------------------------------


def test_no_authorization_is_401_with_a_bearer_challenge(api: Api) -> None:
    response = post_token(api, {})
    assert_refused(response, 401)
    assert response.header(
        "WWW-Authenticate",
    ).startswith("Bearer")
    assert api.provider.calls == []


@pytest.mark.parametrize(
    "make_secret",
    [
        pytest.param(lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), id="same-length"),
        pytest.param(lambda s: s + "x", id="longer"),
        pytest.param(lambda s: s[:8], id="shorter"),
        pytest.param(lambda s: "", id="empty"),
        pytest.param(lambda s: s[:-2] + "é€", id="non-ascii"),
    ],
)
def test_a_wrong_secret_is_401(api: Api, make_secret) -> None:
    wrong = make_secret(api.secret)
    header = f"Bearer {wrong}".encode().decode("latin-1")  # raw bytes on the wire
    response = post_token(api, {"Authorization": header})
    assert_refused(response, 401)
    assert "Bearer" in response.header("WWW-Authenticate")
    assert api.provider.calls == []


def test_another_auth_scheme_is_401(api: Api) -> None:
    response = post_token(api, {"Authorization": f"Basic {api.secret}"})
    assert_refused(response, 401)


def test_secrets_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch, api: Api) -> None:
    """The comparison goes through hmac.compare_digest on bytes (timing is not measured)."""
    import broker.api.clients

    compared: list[tuple[object, object]] = []
    real = broker.api.clients.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(broker.api.clients.hmac, "compare_digest", spy)
    post_token(api, {"Authorization": "Bearer wrong"})
    assert compared and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in compared)


# -- #3: no query strings --------------------------------------------------------------------------


def test_a_secret_in_the_query_string_is_400_and_never_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = f"/v1/token?secret={api.secret}&access_token=query-canary-55"
    request = build_request(
        "POST", path, api.port, {"X-MCP-Broker": "1", "Content-Type": "application/json"}, BODY
    )
    response = raw_request(api.port, request)
    assert_refused(response, 400)
    assert api.secret.encode() not in response.body
    assert api.secret not in caplog.text and "query-canary-55" not in caplog.text
    assert api.provider.calls == []


# -- #4, #5: the exact Host allowlist --------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:{port}",
        "0.0.0.0:{port}",
        "127.0.0.2:{port}",
        "localhost.:{port}",
        "127.0.0.1:{other}",
        "localhost:{other}",
        "127.0.0.1",
        "localhost",
        "[::1]:{port}",
        "127.0.0.1:{port}, attacker.example",
        "",
    ],
)
def test_a_host_outside_the_allowlist_is_refused(api: Api, host: str) -> None:
    value = host.format(port=api.port, other=api.port + 1)
    response = post_token(api, auth(api), host=value)
    assert_refused(response, 403)
    assert api.provider.calls == []


def test_a_missing_host_is_refused(api: Api) -> None:
    request = (
        b"POST /v1/token HTTP/1.0\r\nX-MCP-Broker: 1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api.secret}\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )
    assert_refused(raw_request(api.port, request), 403)
    assert api.provider.calls == []


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}"])
def test_both_loopback_names_are_served(api: Api, host: str) -> None:
    assert post_token(api, auth(api), host=host.format(port=api.port)).status == 200


# -- #6, #7, #9: nothing a browser sends --------------------------------------------------------


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:{port}"])
def test_any_origin_is_403(api: Api, origin: str) -> None:
    response = post_token(api, {**auth(api), "Origin": origin.format(port=api.port)})
    assert_refused(response, 403)
    assert api.provider.calls == []


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        {
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true",
        },
        {"Access-Control-Request-Private-Network": "true"},
    ],
)
@pytest.mark.parametrize("path", ["/v1/token", "/v1/status", "/v1/openapi.json", "/nowhere"])
def test_options_and_preflights_are_refused_without_allow_headers(
    api: Api, extra: dict[str, str], path: str
) -> None:
    response = raw_request(api.port, build_request("OPTIONS", path, api.port, extra))
    assert_refused(response, 403)
    assert "allow" not in response.header_names()


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Mode": "no-cors"},
        {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"},
        {"Sec-Fetch-Dest": "empty"},
    ],
)
def test_fetch_metadata_of_a_browser_is_403(api: Api, headers: dict[str, str]) -> None:
    assert_refused(post_token(api, {**auth(api), **headers}), 403)
    assert api.provider.calls == []


def test_no_response_carries_cors_headers(api: Api) -> None:
    responses = [
        post_token(api, auth(api)),
        post_token(api, {}),
        post_token(api, {**auth(api), "Origin": "https://evil.example"}),
        raw_request(
            api.port,
            build_request("GET", "/v1/status", api.port, {"X-MCP-Broker": "1", **auth(api)}),
        ),
        raw_request(
            api.port, build_request("GET", "/v1/openapi.json", api.port, {"X-MCP-Broker": "1"})
        ),
        raw_request(api.port, build_request("GET", "/nope", api.port, {"X-MCP-Broker": "1"})),
    ]
    for response in responses:
        assert not any(n.startswith("access-control-") for n in response.header_names())
        assert response.header("Cache-Control") == "no-store"


# -- #8: only JSON bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", BODY),
        ("text/plain;charset=UTF-8", BODY),
        ("application/x-www-form-urlencoded", b"resource=https%3A%2F%2Fa.example%2Fmcp"),
        (
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="resource"\r\n\r\n'
            b"https://a.example/mcp\r\n--xx--\r\n",
        ),
        ("application/json; charset=latin-1", BODY),
        ("", BODY),
    ],
)
def test_browser_style_bodies_are_415_with_no_side_effect(
    api: Api, content_type: str, body: bytes
) -> None:
    response = post_token(api, {**auth(api), "Content-Type": content_type}, body=body)
    assert_refused(response, 415)
    assert api.provider.calls == []
    assert not api.paths.audit_log.exists()


# -- #10: relays ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "127.0.0.1"},
        {"Forwarded": "for=127.0.0.1"},
        {"Via": "1.1 proxy"},
        {"X-Forwarded-Host": "127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
    ],
)
def test_relayed_requests_are_403(api: Api, headers: dict[str, str]) -> None:
    assert_refused(post_token(api, {**auth(api), **headers}), 403)
    assert api.provider.calls == []


# -- #11: the custom header ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "0", "true", ""])
def test_without_the_custom_header_a_valid_secret_is_403(api: Api, value: str | None) -> None:
    headers = {"Content-Type": "application/json", **auth(api)}
    if value is not None:
        headers["X-MCP-Broker"] = value
    response = raw_request(api.port, build_request("POST", "/v1/token", api.port, headers, BODY))
    assert_refused(response, 403)
    assert api.provider.calls == []


# -- #18: body size -------------------------------------------------------------------------------


def test_a_body_over_64_kib_is_413(api: Api) -> None:
    big = json.dumps({"resource": SERVER_A, "scope": "x" * (64 * 1024)}).encode()
    response = post_token(api, auth(api), body=big)
    assert response.status == 413
    assert api.provider.calls == []
    assert post_token(api, auth(api)).status == 200  # still serving


def test_a_chunked_body_over_64_kib_is_413(api: Api) -> None:
    chunk = b"x" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
    head = (
        f"POST /v1/token HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nX-MCP-Broker: 1\r\n"
        f"Authorization: Bearer {api.secret}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    response = raw_request(api.port, head + chunks)
    assert response.status == 413
    assert api.provider.calls == []


# -- #19: malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"",
        b"null",
        b"[]",
        b'"https://a.example/mcp"',
        b"\xff\xfe{}",
        b'{"resource": 5}',
        b'{"resource": ["https://a.example/mcp"]}',
        b'{"resource": ""}',
        b'{"resource": null}',
        b"{}",
        b'{"resource": "https://a.example/mcp", "min_valid_seconds": -1}',
        b'{"resource": "https://a.example/mcp", "min_valid_seconds": 1e300}',
        b'{"resource": "https://a.example/mcp", "min_valid_seconds": 86401}',
        b'{"resource": "https://a.example/mcp", "min_valid_seconds": "60"}',
        b'{"resource": "https://a.example/mcp", "min_valid_seconds": true}',
        b'{"resource": "https://a.example/mcp", "min_valid_seconds": NaN}',
        b'{"resource": "https://a.example/mcp", "min_valid_seconds": Infinity}',
        b'{"resource": "https://a.example/mcp", "min_valid_seconds": 1' + b"0" * 5000 + b"}",
        b'{"resource": "https://a.example/mcp", "scope": 7}',
        b'{"resource": "https://a.example/mcp", "scope": "a\\nb"}',
        b'{"resource": "https://a.example/mcp", "refresh_token": "x"}',
        b'{"resource": "https://a.example/mcp", "resource": "https://b.example/mcp"}',
        b'{"resource": "https://a.example/mcp\\u0000"}',
        b"[" * 100_00 + b"]" * 100_00,
    ],
)
def test_malformed_bodies_are_400_and_the_server_survives(api: Api, body: bytes) -> None:
    response = post_token(api, auth(api), body=body)
    assert response.status == 400, response.body
    assert json.loads(response.body)["error"] == "invalid_request"
    assert api.provider.calls == []
    assert post_token(api, auth(api)).status == 200
