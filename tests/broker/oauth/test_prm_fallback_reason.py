"""When the server's own resource metadata is passed over (its URL in the 401 is unsafe, or the
path-specific document redirects) and the root document then names another resource, the error
gives the real reason, not only an unrelated "resource mismatch". Recorded exchanges, no I/O.
"""

from __future__ import annotations

import httpx2
import pytest

from broker.errors import DiscoveryError
from broker.oauth.discovery import discover, drive
from broker.oauth.www_authenticate import BearerChallenge

SERVER = "https://mcp.example/mcp"
PATH_PRM = "https://mcp.example/.well-known/oauth-protected-resource/mcp"
ROOT_PRM = "https://mcp.example/.well-known/oauth-protected-resource"
ROOT_DOC = {
    "resource": "https://other.example/mcp",
    "authorization_servers": ["https://as.example"],
}


def serve(answers: dict[str, httpx2.Response]) -> object:
    def send(request: httpx2.Request) -> httpx2.Response:
        return answers.get(str(request.url), httpx2.Response(404))

    return send


def run(answers: dict[str, httpx2.Response], challenge: BearerChallenge | None = None) -> str:
    with pytest.raises(DiscoveryError) as raised:
        drive(discover(SERVER, challenge), serve(answers))  # type: ignore[arg-type]
    return str(raised.value)


def test_a_redirecting_path_document_is_the_reason_given() -> None:
    message = run(
        {
            PATH_PRM: httpx2.Response(302, headers={"Location": "https://elsewhere.example/prm"}),
            ROOT_PRM: httpx2.Response(200, json=ROOT_DOC),
        }
    )
    assert "redirects" in message and PATH_PRM in message
    assert "elsewhere.example/prm" in message


def test_an_unsafe_metadata_url_in_the_401_is_the_reason_given() -> None:
    challenge = BearerChallenge({"resource_metadata": "http://evil.example/prm"})
    message = run({ROOT_PRM: httpx2.Response(200, json=ROOT_DOC)}, challenge)
    assert "unsafe URL" in message and "resource_metadata" in message


def test_without_an_earlier_reason_the_mismatch_is_reported_as_it_is() -> None:
    message = run({ROOT_PRM: httpx2.Response(200, json=ROOT_DOC)})
    assert "names resource 'https://other.example/mcp'" in message
