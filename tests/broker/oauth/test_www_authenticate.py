from __future__ import annotations

import pytest

from broker.oauth.www_authenticate import (
    BearerChallenge,
    parse_bearer_challenge,
    parse_challenges,
)


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


@pytest.mark.timeout(5)  # the regexes must not backtrack for long on hostile input
@pytest.mark.parametrize(
    ("junk", "challenges"),
    [
        ("=", []),
        (",,,", []),
        ("\x00\x1b[31m", []),
        ('Bearer ="x"', [("bearer", {})]),  # a parameter with no name is dropped
        ('Bearer scope="unterminated', [("bearer", {})]),  # so is an unterminated quote
        ("Bearer " + "a=" * 5000, [("bearer", {"a": "a=" * 4999})]),
        ('Bearer scope="' + "\\" * 5000, [("bearer", {})]),
        ('Bearer scope="' + "a" * 50_000, [("bearer", {})]),
        ("Bearer " + " " * 20_000 + "x", [("bearer", {})]),
        # The first "x" reads as Bearer's token68; each later one is a scheme of its own.
        ("Bearer " + "x, " * 5000, [("bearer", {})] + [("x", {})] * 4999),
    ],
    ids=lambda v: v[:20].encode("unicode_escape").decode() if isinstance(v, str) else "",
)
def test_garbage_is_parsed_into_what_it_holds_without_hanging(
    junk: str, challenges: list[tuple[str, dict[str, str]]]
) -> None:
    assert parse_challenges(junk) == challenges
    bearer = [params for scheme, params in challenges if scheme == "bearer"]
    expected = BearerChallenge(bearer[0]) if bearer else None
    assert parse_bearer_challenge(junk) == expected
