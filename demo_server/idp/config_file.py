"""Read users, app clients, resource servers and keys from a TOML or JSON file.

The format (TOML shown; JSON has the same keys)::

    [[users]]
    username = "alice"
    password = "correct horse"        # or password_hash = "scrypt:..." (werkzeug.security)
    email = "alice@example.com"
    groups = ["admins"]

    [[clients]]
    client_id = "my-app"
    client_secret = "s3cret"          # optional: makes a confidential client
    callback_urls = ["http://127.0.0.1:8080/callback"]
    logout_urls = ["http://127.0.0.1:8080/"]
    allowed_scopes = ["openid", "email", "http://127.0.0.1:8000/mcp/tools"]
    allowed_flows = ["code", "refresh_token"]   # also "client_credentials" (with a secret),
                                                # "device_code" (RFC 8628, --device-flow only),
                                                # "jwt-bearer" (may redeem ID-JAGs, --trust-idp),
                                                # "workload-jwt" (may redeem workload JWTs);
                                                # callback_urls only needed with "code"
    workload_subjects = ["system:serviceaccount:ci:agent"]   # optional, with "workload-jwt":
                                                # the only JWT subs accepted (default: any)

    [[resource_servers]]
    identifier = "http://127.0.0.1:8001/mcp"
    scopes = ["tools", "admin"]

    [[trusted_workloads]]             # NOT Cognito: like --trust-workload (workload identity)
    issuer = "https://token.actions.githubusercontent.com"
    jwks = "workload-jwks.json"       # a JWKS file (relative to this file) or an http(s) URL;
                                      # omitted: jwks_uri from the issuer's discovery document

    [keys]                            # optional PEM private keys, relative to this file
    access_key_pem = "access.pem"
    id_key_pem = "id.pem"
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.security import generate_password_hash

from demo_server.idp.extension_settings import TrustedIdp, trusted_workload
from demo_server.idp.keys import SigningKeys, load_rsa_key
from demo_server.idp.settings import (
    ALL_FLOWS,
    CLIENT_CREDENTIALS,
    DEFAULT_CUSTOM_SCOPES,
    DEMO_CLIENT_STANDARD_SCOPES,
    KNOWN_FLOWS,
    ClientConfig,
    ResourceServerConfig,
    UserConfig,
)


class ConfigError(ValueError):
    """The config file cannot be used; the message says where."""


@dataclass(frozen=True)
class FileConfig:
    users: tuple[UserConfig, ...] = ()
    clients: tuple[ClientConfig, ...] = ()
    resource_servers: tuple[ResourceServerConfig, ...] = ()
    keys: SigningKeys | None = None
    trusted_workloads: tuple[TrustedIdp, ...] = ()


def load_config(path: Path, known_servers: tuple[ResourceServerConfig, ...] = ()) -> FileConfig:
    """Parse ``path`` (``.json`` as JSON, anything else as TOML).

    A client without ``allowed_scopes`` gets openid, email, profile and the custom scopes of
    ``known_servers`` plus the file's own resource servers.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/object")
    servers = tuple(parse_resource_server(item) for item in table_list(data, "resource_servers"))
    return FileConfig(
        users=tuple(parse_user(item) for item in table_list(data, "users")),
        clients=tuple(
            parse_client(item, known_servers + servers) for item in table_list(data, "clients")
        ),
        resource_servers=servers,
        keys=parse_keys(data.get("keys"), path.parent),
        trusted_workloads=tuple(
            parse_trusted_workload(item, path.parent)
            for item in table_list(data, "trusted_workloads")
        ),
    )


def table_list(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"'{key}' must be a list of tables/objects")
    return items


def text(item: dict[str, Any], key: str, default: str | None = None) -> str:
    value = item.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"'{key}' must be a non-empty string in {sorted(item)}")
    return value


def texts(item: dict[str, Any], key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = item.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"'{key}' must be a list of strings")
    return tuple(value)


def parse_user(item: dict[str, Any]) -> UserConfig:
    if "password_hash" in item:
        password_hash = text(item, "password_hash")
    else:
        password_hash = generate_password_hash(text(item, "password"))
    return UserConfig(
        username=text(item, "username"),
        password_hash=password_hash,
        email=str(item.get("email", "")),
        groups=texts(item, "groups"),
    )


def parse_client(item: dict[str, Any], servers: tuple[ResourceServerConfig, ...]) -> ClientConfig:
    secret = item.get("client_secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ConfigError("'client_secret' must be a non-empty string")
    flows = texts(item, "allowed_flows", ALL_FLOWS)
    unknown = [flow for flow in flows if flow not in KNOWN_FLOWS]
    if unknown:
        raise ConfigError(f"unknown allowed_flows {unknown}; known: {list(KNOWN_FLOWS)}")
    if CLIENT_CREDENTIALS in flows and secret is None:
        raise ConfigError("client_credentials needs a client_secret (a confidential client)")
    callbacks = texts(item, "callback_urls")
    if not callbacks and "code" in flows:
        raise ConfigError(f"client {item.get('client_id')!r} needs callback_urls")
    default_scopes = DEMO_CLIENT_STANDARD_SCOPES + tuple(
        s for rs in servers for s in rs.full_scopes()
    )
    return ClientConfig(
        client_id=text(item, "client_id"),
        client_secret=secret,
        callback_urls=callbacks,
        logout_urls=texts(item, "logout_urls"),
        allowed_scopes=texts(item, "allowed_scopes", default_scopes),
        allowed_flows=flows,
        workload_subjects=texts(item, "workload_subjects"),
    )


def parse_resource_server(item: dict[str, Any]) -> ResourceServerConfig:
    return ResourceServerConfig(
        text(item, "identifier"), texts(item, "scopes", DEFAULT_CUSTOM_SCOPES)
    )


def parse_trusted_workload(item: dict[str, Any], base: Path) -> TrustedIdp:
    """A ``[[trusted_workloads]]`` table: ``issuer`` and optional ``jwks`` (URL or file)."""
    unknown = sorted(set(item) - {"issuer", "jwks"})
    if unknown:
        raise ConfigError(f"trusted_workloads: unknown keys {unknown}")
    try:
        return trusted_workload(text(item, "issuer"), item.get("jwks"), base)
    except ValueError as error:
        raise ConfigError(f"trusted_workloads: {error}") from error


def parse_keys(item: object, base: Path) -> SigningKeys | None:
    if item is None:
        return None
    if not isinstance(item, dict):
        raise ConfigError("'keys' must be a table/object")
    try:
        access = load_rsa_key(base / text(item, "access_key_pem"), "access-key")
        id_key = load_rsa_key(base / text(item, "id_key_pem"), "id-key")
    except (OSError, ValueError) as error:
        raise ConfigError(f"keys: {error}") from error
    return SigningKeys(access=access, id=id_key)
