"""The broker's config file (TOML): broker settings and the MCP servers it signs in to.

    [broker]                      # optional; each key also has an environment variable
    log_level = "INFO"            # the running broker's log (`mcp-broker run`); -v wins
    keyring_timeout = 10          # seconds a keyring call may take
    api_port = 0                  # the token API's port on 127.0.0.1 (0: any free one)

    [[servers]]
    url = "https://mcp.example.com/mcp"     # canonical MCP server URL (the RFC 8707 resource)
    client_id = "abc"                       # optional: a pre-registered client
    provider = "auto"                       # "auto" | "cognito" | "oidc"
    callback_ports = [53682, 53683, 53684]
    send_resource = true                    # false for authorization servers that reject it
    scopes = ["openid", "mcp/read"]         # optional
    issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X"  # pinned after discovery
    client_registered = true      # set by the broker: it registered client_id at issuer itself
    client_metadata_url = "https://example.org/mcp-broker.json"  # optional: your CIMD's URL
    grant = "client_credentials"  # a machine identity (client_id is a confidential client)
    client_auth = "private_key_jwt"  # a machine's authentication: "client_secret" (default) or this
    send = "id-token"             # send the ID token, not the access token (a workaround, below)
    dpop = true                   # DPoP (RFC 9449): true always, false never; unset: when offered
    resource_name = "Example MCP"  # set by the broker: the server's PRM resource_name (display)
    enterprise = "corp"           # enterprise-managed: tokens from ID-JAGs of the IdP "corp"
    workload_token_file = "/var/run/secrets/tokens/mcp"  # workload identity: a JWT re-read per use

    [[idps]]                      # an organisation's IdP (enterprise-managed authorization)
    name = "corp"
    issuer = "https://idp.example.com"
    client_id = "mcp-broker"      # the broker's client at the IdP (its secret, if any: keyring)
    scopes = ["openid", "email"]  # optional
    id_token_file = "/run/user/1000/id-token"  # optional: an ID token the environment provides

``send = "id-token"`` (``mcp-broker add URL --send id-token``) is a workaround for gateways that
accept only OpenID Connect ID tokens: the broker then signs in with ``openid`` and hands out the
ID token, which names the user to the client that signed in, not to the MCP server (it is not an
access token: no scopes, no resource audience). Never the default.

Client secrets of confidential clients belong in the OS keyring
(``KeyringTokenStore.put_client_secret(issuer, client_id, secret)``), not here. A
``client_secret`` typed into the file by hand is read (with a warning to move it) and preserved
on save, never added by the broker. A machine identity's secret or private key
(``mcp-broker add URL --client-id ID --client-credentials``) is kept in the keyring under the
server's URL (:func:`machine_credential_owner`). A corrupt file raises :class:`ConfigError`
naming the file and the problem, and is never overwritten. Saves are atomic, mode 0600, under a
cross-process lock.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from broker.errors import ConfigError
from broker.filelock import lock_for
from broker.idps import IdpConfig, check_assertion_server, idp_items, parse_idps
from broker.oauth.providers import FIXED_CALLBACK_PORTS
from broker.oauth.resource import canonical_resource
from broker.paths import BrokerPaths, ensure_safe_config, write_private_file
from broker.safetext import safe_text

logger = logging.getLogger(__name__)

PROVIDERS = ("auto", "cognito", "oidc")
CLIENT_CREDENTIALS = "client_credentials"
GRANTS = (CLIENT_CREDENTIALS,)
CLIENT_SECRET = "client_secret"  # noqa: S105 (a method name)
PRIVATE_KEY_JWT = "private_key_jwt"
CLIENT_AUTHS = (CLIENT_SECRET, PRIVATE_KEY_JWT)
ID_TOKEN = "id-token"  # noqa: S105 (a token type)
SEND_TOKENS = (ID_TOKEN,)
CONFIG_ENV = "MCP_BROKER_CONFIG"


@dataclass(frozen=True)
class ServerConfig:
    url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    provider: str = "auto"
    callback_ports: tuple[int, ...] = FIXED_CALLBACK_PORTS
    send_resource: bool = True
    scopes: tuple[str, ...] | None = None
    issuer: str | None = None
    #: True when the broker registered ``client_id`` itself (DCR) at ``issuer``: the client is
    #: bound to that issuer and forgotten with it (MCP authorization, SEP-2352). None for a
    #: client the user configured.
    client_registered: bool | None = None
    #: The URL of a Client ID Metadata Document describing the broker, hosted by the user or
    #: their organisation: the client id at authorization servers that accept one.
    client_metadata_url: str | None = None
    #: ``client_credentials``: a machine identity (RFC 6749 §4.4) instead of a person's sign-in;
    #: None: the authorization code grant in a browser.
    grant: str | None = None
    #: How a machine identity authenticates: ``client_secret`` (None means the same) or
    #: ``private_key_jwt`` (RFC 7523). The secret or key itself is in the keyring.
    client_auth: str | None = None
    #: ``id-token``: hand out the sign-in's OpenID Connect ID token instead of the access token,
    #: a workaround for gateways that accept only ID tokens (AWS Bedrock AgentCore Gateway with
    #: the Cognito app client as its audience). None (the default): the access token.
    send: str | None = None
    #: The server's own name, its Protected Resource Metadata ``resource_name`` (RFC 9728 §2),
    #: recorded (sanitised: it comes from the network) at each sign-in; for display only.
    resource_name: str | None = None
    #: DPoP (RFC 9449): None uses it when the authorization server offers it (ES256 in
    #: ``dpop_signing_alg_values_supported``), True always (``add --dpop``: a Bearer answer is
    #: refused), False never (``add --no-dpop``). See :mod:`broker.tokens.dpop`.
    dpop: bool | None = None
    #: Enterprise-managed authorization: the name of the ``[[idps]]`` entry whose sign-in gets
    #: this server's tokens (ID-JAG exchange + JWT bearer grant, :mod:`broker.tokens.enterprise`).
    enterprise: str | None = None
    #: Workload identity federation: a file holding a JWT the environment provides, read on
    #: each use and sent in the JWT bearer grant (:mod:`broker.tokens.workload`).
    workload_token_file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", canonical_resource(self.url))
        if self.provider not in PROVIDERS:
            raise ConfigError(f"provider must be one of {', '.join(PROVIDERS)}")
        for name, allowed in (
            ("grant", GRANTS),
            ("client_auth", CLIENT_AUTHS),
            ("send", SEND_TOKENS),
        ):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}")
        if self.grant == CLIENT_CREDENTIALS and not self.client_id:
            raise ConfigError("a machine identity (grant = client_credentials) needs a client_id")
        if self.grant == CLIENT_CREDENTIALS and self.send == ID_TOKEN:
            raise ConfigError(
                "a machine identity has no ID token (no person signs in): send = id-token "
                "cannot be used with grant = client_credentials"
            )
        check_assertion_server(self)

    @property
    def sends_id_token(self) -> bool:
        """The ID token is handed out instead of the access token (``send = "id-token"``)."""
        return self.send == ID_TOKEN

    @property
    def machine(self) -> bool:
        """A machine identity: tokens from the client credentials grant, no person, no browser."""
        return self.grant == CLIENT_CREDENTIALS

    @property
    def assertion_grant(self) -> bool:
        """Tokens from a JWT bearer grant (an ID-JAG or a workload JWT), no browser."""
        return self.enterprise is not None or self.workload_token_file is not None

    @property
    def display_name(self) -> str:
        """What people call the server: its ``resource_name``, else host[:port] and path."""
        return server_label(self.url, self.resource_name)

    @property
    def profile_name(self) -> str | None:
        """The name for ``broker.oauth.providers.profile_for`` (None: decide from the issuer)."""
        return {"auto": None, "cognito": "cognito", "oidc": "generic"}[self.provider]


def replacing(
    existing: ServerConfig | None, wanted: ServerConfig, *, reset_issuer: bool = False
) -> ServerConfig:
    """``wanted``, the settings a user gives for a server (``mcp-broker add``, the control
    page), as they replace ``existing``.

    What ``wanted`` leaves out is kept: the client ID (None), the Client ID Metadata Document URL
    and the server's recorded name. So is the pinned issuer, unless ``reset_issuer`` or the
    sign-in no longer fits: another client ID (it may belong to another authorization server) or
    another token to send (the sign-in was for the other one). A client the broker registered is
    bound to its issuer and forgotten with it (SEP-2352).
    """
    if existing is None:
        return wanted
    issuer = None if reset_issuer else existing.issuer
    if wanted.client_id not in (None, existing.client_id) or wanted.send != existing.send:
        issuer = None
    kept: ServerConfig | None = existing
    if existing.client_registered and issuer != existing.issuer:
        kept = None
    same_client = kept is not None and wanted.client_id in (None, kept.client_id)
    return replace(
        wanted,
        client_id=wanted.client_id or (kept.client_id if kept else None),
        # A secret typed into the config file by hand goes with its client.
        client_secret=wanted.client_secret or (existing.client_secret if same_client else None),
        client_registered=kept.client_registered if kept is not None and same_client else None,
        client_metadata_url=wanted.client_metadata_url or existing.client_metadata_url,
        issuer=issuer,
        resource_name=wanted.resource_name or existing.resource_name,
    )


def same_sign_in(old: ServerConfig, new: ServerConfig) -> bool:
    """Whether ``old``'s sign-in (its token key: issuer and client) is still the one ``new``
    uses; a server with no issuer pinned has no sign-in to keep."""
    return old.issuer is None or (old.issuer, old.client_id) == (new.issuer, new.client_id)


def server_label(url: str, resource_name: str | None = None) -> str:
    """A server's name for people: its PRM ``resource_name`` when it publishes one, else its
    host[:port] and path. Control and escape characters are shown, not passed on."""
    if resource_name and resource_name.strip():
        return safe_text(resource_name.strip(), NAME_LIMIT)
    parts = urlsplit(url)
    return safe_text(f"{parts.netloc}{parts.path}", NAME_LIMIT)


NAME_LIMIT = 60


@dataclass(frozen=True)
class Settings:
    """Broker-wide settings after precedence is applied (see :func:`resolve_settings`)."""

    #: The log level of the running broker (``mcp-broker run``) when no ``-v`` is given; None:
    #: the command's own (warnings, or ``-v``/``-vv``).
    log_level: str | None = None
    #: Seconds a keyring call may take before the broker gives up on it.
    keyring_timeout: float = 10.0
    #: The token API's port on 127.0.0.1; 0: any free one. Clients find it in endpoint.json
    #: either way; a fixed port is taken only if free (the broker does not start otherwise).
    api_port: int = 0


@dataclass(frozen=True)
class Config:
    path: Path
    settings: Mapping[str, Any] = field(default_factory=dict)  # as written in [broker]
    servers: tuple[ServerConfig, ...] = ()
    idps: tuple[IdpConfig, ...] = ()

    def get_idp(self, name: str) -> IdpConfig | None:
        return next((idp for idp in self.idps if idp.name == name), None)

    def get_server(self, url: str) -> ServerConfig | None:
        wanted = canonical_resource(url)
        return next((s for s in self.servers if s.url == wanted), None)

    def with_server(self, server: ServerConfig) -> Config:
        """Add ``server``, or replace the entry with the same URL in place."""
        if self.get_server(server.url) is None:
            return replace(self, servers=(*self.servers, server))
        servers = tuple(server if s.url == server.url else s for s in self.servers)
        return replace(self, servers=servers)

    def without_server(self, url: str) -> Config:
        wanted = canonical_resource(url)
        return replace(self, servers=tuple(s for s in self.servers if s.url != wanted))


# -- precedence: argument > environment > file > default -------------------------------------


@dataclass(frozen=True)
class _Setting:
    env: str
    parse: Callable[[str], Any]


SETTINGS: dict[str, _Setting] = {
    "log_level": _Setting("MCP_BROKER_LOG_LEVEL", lambda v: v.upper()),
    "keyring_timeout": _Setting("MCP_BROKER_KEYRING_TIMEOUT", float),
    "api_port": _Setting("MCP_BROKER_API_PORT", int),
}


def resolve_settings(
    config: Config, environ: Mapping[str, str] | None = None, **arguments: Any
) -> Settings:
    """The one place where precedence is decided: argument, then environment, then file, then
    the default. ``arguments`` left as None do not count."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    values = {
        name: _first_set(
            arguments.get(name),
            _from_env(env, spec),
            config.settings.get(name),
            getattr(defaults, name),
        )
        for name, spec in SETTINGS.items()
    }
    return _validated_settings(values, where="settings")


def config_path(paths: BrokerPaths, argument: str | Path | None = None) -> Path:
    """The config file: ``--config`` argument, then ``MCP_BROKER_CONFIG``, then the default."""
    chosen = _first_set(argument, os.environ.get(CONFIG_ENV) or None, paths.config_file)
    return Path(chosen)


def _first_set(*candidates: Any) -> Any:
    return next((c for c in candidates if c is not None), None)


def _from_env(environ: Mapping[str, str], spec: _Setting) -> Any:
    raw = environ.get(spec.env)
    if raw is None or raw == "":
        return None
    try:
        return spec.parse(raw)
    except ValueError:
        raise ConfigError(f"environment variable {spec.env}={raw!r} is not valid") from None


def _validated_settings(values: Mapping[str, Any], where: str) -> Settings:
    timeout, port, level = values["keyring_timeout"], values["api_port"], values["log_level"]
    if not _is_number(timeout) or not 0 < timeout <= 3600:
        raise ConfigError(f"{where}: keyring_timeout must be a number of seconds in (0, 3600]")
    if not _is_int(port) or not 0 <= port <= 65535:
        raise ConfigError(f"{where}: api_port must be an integer in 0..65535")
    if level is not None and (
        not isinstance(level, str) or level.upper() not in logging.getLevelNamesMapping()
    ):
        raise ConfigError(f"{where}: log_level must be a logging level name such as INFO")
    log_level = None if level is None else level.upper()
    return Settings(log_level=log_level, keyring_timeout=float(timeout), api_port=port)


# -- reading ---------------------------------------------------------------------------------


def load_config(path: Path) -> Config:
    """Read ``path``; a missing file is an empty config. Raises :class:`ConfigError`."""
    ensure_safe_config(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc}). The file was left unchanged; fix it or move it away."
        ) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(
            f"{path}: nested too deeply to be a broker config. The file was left unchanged; fix "
            "it or move it away."
        ) from None
    return _parse(path, doc)


def _parse(path: Path, doc: dict[str, Any]) -> Config:
    _no_unknown_keys(path, "the top level", doc, {"broker", "servers", "idps"})
    settings = doc.get("broker", {})
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: [broker] must be a table")
    _no_unknown_keys(path, "[broker]", settings, set(SETTINGS))
    _validated_settings({**Settings().__dict__, **settings}, where=f"{path}: [broker]")
    entries = doc.get("servers", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: servers must be an array of tables ([[servers]])")
    servers: list[ServerConfig] = []
    for index, entry in enumerate(entries):
        server = _parse_server(f"{path}: servers[{index}]", entry)
        if any(s.url == server.url for s in servers):
            raise ConfigError(f"{path}: servers[{index}] repeats the server {server.url}")
        servers.append(server)
    return Config(path, dict(settings), tuple(servers), parse_idps(path, doc.get("idps", [])))


_SERVER_KEYS = set(ServerConfig.__dataclass_fields__)


def _parse_server(where: str, entry: Any) -> ServerConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    _no_unknown_keys_at(where, entry, _SERVER_KEYS)
    if "url" not in entry:
        raise ConfigError(f"{where} has no url")
    texts = (
        "client_secret",
        "provider",
        "issuer",
        "client_metadata_url",
        "resource_name",
        "grant",
        "client_auth",
        "send",
        "enterprise",
        "workload_token_file",
    )
    for name in ("url", "client_id", *texts):
        if name in entry and not isinstance(entry[name], str):
            raise ConfigError(f"{where}.{name} must be a string")
    ports = entry.get("callback_ports", list(FIXED_CALLBACK_PORTS))
    if not isinstance(ports, list) or not all(_is_int(p) and 0 < p < 65536 for p in ports):
        raise ConfigError(f"{where}.callback_ports must be a list of port numbers (1-65535)")
    scopes = entry.get("scopes")
    if scopes is not None and not (
        isinstance(scopes, list) and all(isinstance(s, str) and s and " " not in s for s in scopes)
    ):
        raise ConfigError(f"{where}.scopes must be a list of scope names without spaces")
    for flag in ("send_resource", "client_registered", "dpop"):
        if not isinstance(entry.get(flag, True), bool):
            raise ConfigError(f"{where}.{flag} must be true or false")
    if entry.get("client_secret"):
        logger.warning(
            "%s has a client_secret in plain text; store it in the OS keyring instead", where
        )
    try:
        fields = {**entry, "callback_ports": tuple(ports)}
        fields["scopes"] = None if scopes is None else tuple(scopes)
        return ServerConfig(**fields)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _no_unknown_keys(path: Path, where: str, table: Mapping[str, Any], known: set[str]) -> None:
    _no_unknown_keys_at(f"{path}: {where}", table, known)


def _no_unknown_keys_at(where: str, table: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s): {', '.join(unknown)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


# -- the config file of a running process ----------------------------------------------------


class ConfigFile:
    """The config file as a long-lived process reads it: parsed once, and again only when the
    file changed (its stat: inode, size, modification and change times, as
    :class:`broker.api.clients.ClientsFile` does), so asking for a server's entry costs one
    ``stat`` and never a parse on the token path. Writes go through :meth:`update`, under the
    cross-process lock like every write."""

    def __init__(self, path: Path, lock_dir: Path) -> None:
        self.path = path
        self._lock_dir = lock_dir
        self._lock = threading.Lock()
        self._seen: tuple[tuple[int, ...] | None, Config] | None = None

    def load(self) -> Config:
        """The current config (a missing file is an empty one). Raises :class:`ConfigError`."""
        stamp = self._stamp()
        with self._lock:
            seen = self._seen
        if seen is not None and seen[0] == stamp:
            return seen[1]
        config = load_config(self.path)  # checks ownership and modes again, then parses
        with self._lock:
            self._seen = (stamp, config)
        return config

    def update(self, change: Callable[[Config], Config]) -> Config:
        return update_config(self.path, self._lock_dir, change)

    def _stamp(self) -> tuple[int, ...] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot be read ({exc.strerror})") from None
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


# -- writing ---------------------------------------------------------------------------------


def machine_credential_owner(server_url: str) -> str:
    """Under whose name a machine identity's secret or key is kept in the keyring (with its
    client id): the server it was added for, as the issuer is not known before discovery."""
    return canonical_resource(server_url)


def save_config(config: Config) -> None:
    """Write ``config`` to ``config.path`` atomically, mode 0600."""
    config.path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(config.path, dumps_config(config))


def update_config(path: Path, lock_dir: Path, change: Callable[[Config], Config]) -> Config:
    """Load, change and save under a cross-process lock, so two writers never lose an edit."""
    with lock_for(f"config:{path}", lock_dir):
        updated = change(load_config(path))
        save_config(updated)
        return updated


def add_server(path: Path, lock_dir: Path, server: ServerConfig) -> Config:
    return update_config(path, lock_dir, lambda c: c.with_server(server))


def remove_server(path: Path, lock_dir: Path, url: str) -> Config:
    return update_config(path, lock_dir, lambda c: c.without_server(url))


def get_server(path: Path, url: str) -> ServerConfig | None:
    return load_config(path).get_server(url)


def dumps_config(config: Config) -> str:
    """TOML for our flat schema (tomllib reads; the standard library has no writer)."""
    lines = ["# mcp-oauth-broker configuration. Client secrets belong in the OS keyring."]
    if config.settings:
        lines += ["", "[broker]", *_toml_pairs(config.settings.items())]
    for server in config.servers:
        lines += ["", "[[servers]]", *_toml_pairs(_server_items(server))]
    for idp in config.idps:
        lines += ["", "[[idps]]", *_toml_pairs(idp_items(idp))]
    return "\n".join(lines) + "\n"


def _server_items(server: ServerConfig) -> Iterable[tuple[str, Any]]:
    for name in ServerConfig.__dataclass_fields__:
        value = getattr(server, name)
        if value is not None:
            yield name, list(value) if isinstance(value, tuple) else value


def _toml_pairs(items: Iterable[tuple[str, Any]]) -> list[str]:
    return [f"{name} = {toml_value(value)}" for name, value in items]


def toml_value(value: Any) -> str:
    """A TOML literal for a str, bool, int, finite float or list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to the config file")


def toml_string(text: str) -> str:
    """A TOML basic string: escape backslash, quote and every control character."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
