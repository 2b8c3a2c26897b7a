"""Property-based fuzzing of every endpoint over real sockets: malformed methods, paths,
headers and bodies never produce a 5xx, and the server keeps serving afterwards."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.api.server import ApiSettings, start_api
from broker.paths import BrokerPaths
from tests.broker.api.fakes import SERVER_A, FakeProvider, build_request, raw_request

pytestmark = pytest.mark.integration

EXAMPLES = 250
PATHS = ["/v1/token", "/v1/status", "/v1/hello", "/v1/openapi.json", "/", "/v1/", "/v2/token"]
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"]
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
token_bodies = st.dictionaries(
    st.sampled_from(["resource", "scope", "min_valid_seconds", "extra"]) | st.text(max_size=8),
    json_values | st.sampled_from([SERVER_A, "HTTPS://A.EXAMPLE/mcp/", "https://x.example"]),
    max_size=4,
).map(lambda d: json.dumps(d).encode())
bodies = token_bodies | st.binary(max_size=300) | st.just(b"")


@st.composite
def requests(draw: st.DrawFn, port: int, secret: str) -> bytes:
    method = draw(st.sampled_from(METHODS))
    path = draw(
        st.sampled_from(PATHS)
        | st.text(string.printable.strip(), max_size=30).map(lambda p: "/" + p.replace(" ", ""))
    )
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["X-MCP-Broker"] = draw(st.sampled_from(["1", "1", "0", ""]) | header_text)
    if draw(st.booleans()):
        headers["Authorization"] = draw(
            st.sampled_from([f"Bearer {secret}", "Bearer ", "Bearer", f"bearer {secret}x"])
            | header_text
        )
    if draw(st.booleans()):
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain"])
            | header_text
        )
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    "Origin",
                    "Sec-Fetch-Site",
                    "X-MCP-Broker-Nonce",
                    "X-MCP-Broker-Client",
                    "Range",
                    "Expect",
                ]
            ),
            max_size=2,
        )
    ):
        headers[name] = draw(header_text)
    host = draw(
        st.sampled_from([f"127.0.0.1:{port}", f"localhost:{port}", "default"]) | header_text
    )
    return build_request(method, path, port, headers, draw(bodies), host)


def test_no_input_makes_the_api_answer_5xx_or_stop(paths: BrokerPaths) -> None:
    provider = FakeProvider()
    with start_api(provider, paths, settings=ApiSettings(threads=2)) as server:
        secret = server.clients.default_secret

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(requests(server.port, secret))
        def check(request: bytes) -> None:
            response = raw_request(server.port, request)
            assert response.status < 500, (request, response)
            assert not any(n.startswith("access-control-") for n in response.header_names())

        check()

        valid = build_request(
            "POST",
            "/v1/token",
            server.port,
            {
                "X-MCP-Broker": "1",
                "Authorization": f"Bearer {secret}",
                "Content-Type": "application/json",
            },
            json.dumps({"resource": SERVER_A}).encode(),
        )
        assert raw_request(server.port, valid).status == 200
    assert {url for url, _ in provider.calls} <= {SERVER_A, "https://x.example"}
