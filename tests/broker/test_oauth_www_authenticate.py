from __future__ import annotations

from broker.oauth.www_authenticate import parse_bearer_challenge, parse_challenges


def test_bearer_challenge_parameters_are_read() -> None:
    prm = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    challenge = parse_bearer_challenge(
        f'Bearer resource_metadata="{prm}", '
        'scope="files:read  files:write", error="insufficient_scope", '
        'error_description="needs \\"write\\""'
    )
    assert challenge is not None
    assert challenge.resource_metadata == prm
    assert challenge.scope == "files:read files:write"
    assert challenge.insufficient_scope
    assert challenge.error_description == 'needs "write"'


def test_bearer_is_found_among_other_schemes_and_header_lines() -> None:
    header = 'Basic realm="x", Negotiate abc==, Bearer scope=mcp:basic, realm=other'
    assert parse_challenges(header)[0] == ("basic", {"realm": "x"})
    challenge = parse_bearer_challenge(['Basic realm="x"', header])
    assert challenge is not None and challenge.scope == "mcp:basic"
    assert challenge.params["realm"] == "other"


def test_scheme_is_case_insensitive_and_params_optional() -> None:
    challenge = parse_bearer_challenge("bEaReR")
    assert challenge is not None and challenge.scope is None and challenge.error is None


def test_no_bearer_challenge() -> None:
    assert parse_bearer_challenge(None) is None
    assert parse_bearer_challenge('Basic realm="x"') is None
    assert parse_bearer_challenge("") is None


def test_empty_scope_counts_as_absent() -> None:
    challenge = parse_bearer_challenge('Bearer scope=""')
    assert challenge is not None and challenge.scope is None


def test_bare_scheme_followed_by_another_challenge() -> None:
    assert parse_challenges('Bearer, Basic realm="x"') == [
        ("bearer", {}),
        ("basic", {"realm": "x"}),
    ]


def test_garbage_does_not_hang_or_raise() -> None:
    for junk in ["=", ",,,", 'Bearer ="x"', 'Bearer scope="unterminated', "\x00\x1b[31m"]:
        parse_challenges(junk)
        parse_bearer_challenge(junk)
