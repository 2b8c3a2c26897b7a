"""The Add page's preview in words: the profile and why, the scopes and where they come from,
whether the user must give a client id (no I/O: discovery results built by hand)."""

from __future__ import annotations

import dataclasses

import pytest

from broker.errors import DiscoveryError, PkceNotSupported
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
    # (an authorization endpoint like that would not pass discovery, nor the sign-in's check)
    server = dataclasses.replace(discovered.auth_server, authorization_endpoint="https://as.ex/a")
    discovered = dataclasses.replace(discovered, auth_server=server)

    preview = preview_of("https://mcp.example/mcp", "auto", discovered, None)

    assert "\x1b" not in preview.issuer and "\x07" not in preview.issuer


def test_a_server_without_pkce_is_refused_for_a_persons_sign_in() -> None:
    # The page adds servers a person signs in to with the browser: refused now, as before
    # discovery recorded PKCE instead of refusing it; the Cognito profile vouches for S256.
    silent = {"code_challenge_methods_supported": None}
    with pytest.raises(PkceNotSupported, match="does not advertise PKCE"):
        preview_of("https://mcp.example/mcp", "auto", found("https://as.example", **silent), None)
    with pytest.raises(PkceNotSupported, match="does not support PKCE S256"):
        plain = found(COGNITO_ISSUER, COGNITO, code_challenge_methods_supported=("plain",))
        preview_of("https://mcp.example/mcp", "cognito", plain, None)
    vouched = found(COGNITO_ISSUER, COGNITO, **silent)
    preview = preview_of("https://mcp.example/mcp", "cognito", vouched, None)
    assert preview.authorization_endpoint == f"{COGNITO_ISSUER}/authorize"


def test_a_server_without_an_authorization_endpoint_is_refused() -> None:
    discovered = found("https://as.example")
    bare = dataclasses.replace(discovered.auth_server, authorization_endpoint=None)
    with pytest.raises(DiscoveryError, match="no authorization_endpoint"):
        preview_of(
            "https://mcp.example/mcp",
            "auto",
            dataclasses.replace(discovered, auth_server=bare),
            None,
        )
