"""The cache of validated authorization server metadata (broker/tokens/auth_servers.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from broker.oauth.as_metadata import AuthServer
from broker.oauth.providers import COGNITO, GENERIC
from broker.tokens.auth_servers import FILE_NAME, MAX_AGE, AuthServerCache

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test"
SERVER = AuthServer(
    ISSUER,
    "https://auth.example/oauth2/authorize",
    "https://auth.example/oauth2/token",
    COGNITO,
    revocation_endpoint="https://auth.example/oauth2/revoke",
    scopes_supported=("openid", "mcp/tools"),
    iss_parameter_supported=True,
    device_authorization_endpoint="https://auth.example/oauth2/device",
    token_endpoint_auth_signing_alg_values_supported=("RS256",),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(tmp_path: Path, clock: Clock) -> AuthServerCache:
    return AuthServerCache(tmp_path, clock)


def test_metadata_round_trips_through_the_file(
    cache: AuthServerCache, tmp_path: Path, clock: Clock
) -> None:
    cache.put(SERVER)

    assert AuthServerCache(tmp_path, clock).get(ISSUER, "cognito") == SERVER
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o077 == 0


def test_an_entry_is_only_for_its_issuer_and_profile(cache: AuthServerCache) -> None:
    cache.put(SERVER)

    assert cache.get(ISSUER, GENERIC.name) is None
    assert cache.get(ISSUER + "x", "cognito") is None


def test_old_entries_are_fetched_again(cache: AuthServerCache, clock: Clock) -> None:
    cache.put(SERVER)
    clock.now += MAX_AGE - 1
    assert cache.get(ISSUER, "cognito") == SERVER
    clock.now += 2
    assert cache.get(ISSUER, "cognito") is None


def test_forget_drops_one_entry(cache: AuthServerCache) -> None:
    other = dataclasses.replace(SERVER, issuer=ISSUER + "2")
    cache.put(SERVER)
    cache.put(other)

    cache.forget(ISSUER, "cognito")

    assert cache.get(ISSUER, "cognito") is None and cache.get(other.issuer, "cognito") == other


def test_the_fallback_endpoints_are_not_kept(cache: AuthServerCache) -> None:
    cache.put(dataclasses.replace(SERVER, fallback=True))
    assert cache.get(ISSUER, "cognito") is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda doc: "not json{",
        lambda doc: json.dumps([doc]),
        lambda doc: json.dumps({k: {**v, "stored_at": "yesterday"} for k, v in doc.items()}),
        # An endpoint swapped for a plain-http one elsewhere: refused as at discovery (#38).
        lambda doc: json.dumps(doc).replace("https://auth.example/oauth2/token", "http://evil/t"),
        lambda doc: json.dumps(doc).replace(
            '"iss_parameter_supported": true', '"iss_parameter_supported": "yes"'
        ),
        lambda doc: json.dumps(doc).replace('"openid"', "7"),
        lambda doc: json.dumps(doc).replace('"profile": "cognito"', '"profile": "generic"'),
    ],
)
def test_a_damaged_file_costs_a_discovery_not_a_crash(
    cache: AuthServerCache, tmp_path: Path, damage: object
) -> None:
    cache.put(SERVER)
    path = tmp_path / FILE_NAME
    path.write_text(damage(json.loads(path.read_text())))  # type: ignore[operator]

    assert cache.get(ISSUER, "cognito") is None
    cache.put(SERVER)  # and it is rewritten whole at the next discovery
    assert cache.get(ISSUER, "cognito") == SERVER


def test_a_server_for_grants_without_a_browser_round_trips(
    cache: AuthServerCache, tmp_path: Path, clock: Clock
) -> None:
    # No authorization endpoint and no PKCE named: kept as found, to be refused at a sign-in.
    bare = dataclasses.replace(
        SERVER, authorization_endpoint=None, code_challenge_methods_supported=None
    )
    cache.put(bare)
    assert AuthServerCache(tmp_path, clock).get(ISSUER, "cognito") == bare


def test_an_entry_kept_before_pkce_was_recorded_still_offers_s256(
    cache: AuthServerCache, tmp_path: Path
) -> None:
    # Such an entry passed discovery's old check (PKCE S256 offered or vouched for).
    cache.put(SERVER)
    path = tmp_path / FILE_NAME
    doc = json.loads(path.read_text())
    for entry in doc.values():
        del entry["server"]["code_challenge_methods_supported"]
    path.write_text(json.dumps(doc))

    assert cache.get(ISSUER, "cognito") == SERVER
    assert SERVER.code_challenge_methods_supported == ("S256",)
