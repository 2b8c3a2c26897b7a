"""The Add page's preview in words: the profile and why, the scopes and where they come from,
whether the user must give a client id (no I/O: discovery results built by hand)."""

from __future__ import annotations

from broker.oauth.as_metadata import AuthServer
from broker.oauth.discovery import Discovered
from broker.oauth.providers import COGNITO, GENERIC
from broker.oauth.www_authenticate import BearerChallenge
from broker.ui.preview import preview_of

COGNITO_ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc123"


def found(issuer: str, profile: object = GENERIC, **extra: object) -> Discovered:
    server = AuthServer(
        issuer,
        f"{issuer}/authorize",
        f"{issuer}/token",
        profile,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
    return Discovered("https://mcp.example/mcp", "https://mcp.example/mcp", server)


def test_a_cognito_issuer_is_detected_and_needs_a_client_id() -> None:
    preview = preview_of("https://mcp.example/mcp", "auto", found(COGNITO_ISSUER, COGNITO), None)

    assert preview.profile == "cognito"
    assert preview.profile_note.endswith("detected from the issuer's host")
    assert preview.client_id_needed and preview.scopes == ()


def test_a_chosen_profile_says_so_and_the_challenge_names_the_scopes() -> None:
    challenge = BearerChallenge({"scope": "mcp/read  mcp/write"})

    preview = preview_of(
        "https://mcp.example/mcp", "cognito", found("http://127.0.0.1:9/p", COGNITO), challenge
    )

    assert preview.profile_note.endswith("; chosen")
    assert preview.scopes == ("mcp/read", "mcp/write")
    assert preview.scopes_source == "the server's 401 challenge"


def test_dynamic_registration_needs_no_client_id() -> None:
    discovered = found("https://as.example", registration_endpoint="https://as.example/register")

    preview = preview_of("https://mcp.example/mcp", "auto", discovered, None)

    assert preview.profile == "generic" and preview.profile_note.endswith("not a Cognito issuer")
    assert not preview.client_id_needed
    assert preview.registration == "dynamic client registration"


def test_server_text_in_the_preview_is_made_safe() -> None:
    discovered = found("https://as.example/\x1b]0;x\x07")

    preview = preview_of("https://mcp.example/mcp", "auto", discovered, None)

    assert "\x1b" not in preview.issuer and "\x07" not in preview.issuer
