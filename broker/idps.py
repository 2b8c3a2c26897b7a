"""The organisation identity providers of enterprise-managed authorization (``[[idps]]`` in the
config file, ``mcp-broker idp add``), and the config checks of servers that get their tokens with
an assertion grant (``enterprise``, ``workload_token_file``).

An IdP entry names the IdP's issuer (OpenID Connect; its metadata is discovered from it) and the
broker's client there; the user signs in there once (Authorization Code + PKCE, the broker's one
sign-in flow), and each server added with ``--enterprise NAME`` gets its tokens from that sign-in
(:mod:`broker.tokens.enterprise`). With ``id_token_file`` the ID token comes from a file the
environment provides (re-read on each use) instead of a sign-in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.errors import ConfigError, UnsafeEndpoint
from broker.oauth.endpoints import check_endpoint
from broker.oauth.providers import FIXED_CALLBACK_PORTS
from broker.tokens.tokenset import TokenKey

if TYPE_CHECKING:
    from broker.config import ServerConfig

#: IdP names: short, and safe in a command line, a menu and a keyring entry.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
DEFAULT_SCOPES = ("openid",)
_TEXTS = ("name", "issuer", "client_id", "provider", "id_token_file")
_KEYS = {*_TEXTS, "scopes", "callback_ports"}


@dataclass(frozen=True)
class IdpConfig:
    name: str
    issuer: str
    client_id: str
    #: Scopes of the sign-in at the IdP (``openid`` always: the exchange needs an ID token).
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    provider: str = "auto"
    callback_ports: tuple[int, ...] = FIXED_CALLBACK_PORTS
    #: An ID token the environment provides, read on each use, instead of a browser sign-in.
    id_token_file: str | None = None

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ConfigError(
                f"IdP name {self.name[:80]!r}: letters, digits, '.', '_' and '-' (up to 63)"
            )
        try:
            check_endpoint(self.issuer, "the IdP's issuer")  # kept exactly: metadata must match it
        except UnsafeEndpoint as exc:
            raise ConfigError(str(exc)) from None
        if "openid" not in self.scopes:
            object.__setattr__(self, "scopes", ("openid", *self.scopes))
        from broker.config import PROVIDERS

        if self.provider not in PROVIDERS:
            raise ConfigError(f"provider must be one of {', '.join(PROVIDERS)}")

    @property
    def key(self) -> TokenKey:
        """Where the IdP sign-in's tokens are kept: under the IdP's issuer as the resource (the
        sign-in is for no MCP server)."""
        return TokenKey(self.issuer, self.client_id, self.issuer)

    @property
    def profile_name(self) -> str | None:
        return {"auto": None, "cognito": "cognito", "oidc": "generic"}[self.provider]


def check_assertion_server(server: ServerConfig) -> None:
    """A server with an assertion grant names its client and has no other grant."""
    kinds = [server.enterprise, server.workload_token_file, server.grant]
    if sum(kind is not None for kind in kinds) > 1:
        raise ConfigError("enterprise, workload_token_file and grant exclude each other")
    if server.enterprise is not None and not NAME.fullmatch(server.enterprise):
        raise ConfigError("enterprise must name an [[idps]] entry")
    if (server.enterprise or server.workload_token_file) and not server.client_id:
        raise ConfigError("enterprise and workload_token_file need the client_id at the server")


def parse_idps(path: Path, entries: Any) -> tuple[IdpConfig, ...]:
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: idps must be an array of tables ([[idps]])")
    idps: list[IdpConfig] = []
    for index, entry in enumerate(entries):
        where = f"{path}: idps[{index}]"
        idp = _parse_idp(where, entry)
        if any(i.name == idp.name for i in idps):
            raise ConfigError(f"{where} repeats the IdP name {idp.name}")
        idps.append(idp)
    return tuple(idps)


def _parse_idp(where: str, entry: Any) -> IdpConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s): {', '.join(unknown)}")
    for name in _TEXTS:
        if name in entry and not isinstance(entry[name], str):
            raise ConfigError(f"{where}.{name} must be a string")
    for name in ("name", "issuer", "client_id"):
        if not entry.get(name):
            raise ConfigError(f"{where} has no {name}")
    scopes = entry.get("scopes", list(DEFAULT_SCOPES))
    if not (
        isinstance(scopes, list) and all(isinstance(s, str) and s and " " not in s for s in scopes)
    ):
        raise ConfigError(f"{where}.scopes must be a list of scope names without spaces")
    ports = entry.get("callback_ports", list(FIXED_CALLBACK_PORTS))
    if not isinstance(ports, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports
    ):
        raise ConfigError(f"{where}.callback_ports must be a list of port numbers (1-65535)")
    try:
        return IdpConfig(**{**entry, "scopes": tuple(scopes), "callback_ports": tuple(ports)})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def idp_items(idp: IdpConfig) -> Iterable[tuple[str, Any]]:
    for name in IdpConfig.__dataclass_fields__:
        value = getattr(idp, name)
        if value is not None:
            yield name, list(value) if isinstance(value, tuple) else value


def servers_of(idp_name: str, servers: Iterable[ServerConfig]) -> list[ServerConfig]:
    """The servers whose tokens come from the IdP ``idp_name``."""
    return [server for server in servers if server.enterprise == idp_name]


def idp_summary(idp: IdpConfig) -> Mapping[str, Any]:
    """What ``idp list`` shows of an entry (no secret is ever in one)."""
    return {
        "name": idp.name,
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "scopes": list(idp.scopes),
        "id_token_file": idp.id_token_file,
    }
