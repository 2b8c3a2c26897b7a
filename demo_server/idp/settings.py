"""Settings of the local authorization server and the seeds it starts with.

The seeds mirror what the CloudFormation template creates in a real Cognito user pool: a public
app client ``demo-broker`` whose callback URLs are the broker's fixed loopback ports, a resource
server for the demo MCP server with the custom scopes ``tools`` and ``admin``, a user ``demo``, and
a confidential machine-to-machine app client ``demo-m2m`` (Cognito M2M: the ``client_credentials``
grant only, custom resource-server scopes only).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from werkzeug.security import generate_password_hash

from demo_server.idp.extension_settings import DpopSettings, EnterpriseSettings
from demo_server.idp.keys import SigningKeys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_POOL_ID = "us-east-1_Demo00001"
DEFAULT_RESOURCE_SERVER = "http://127.0.0.1:8000/mcp"
DEFAULT_CUSTOM_SCOPES = ("tools", "admin")
BROKER_CALLBACK_PORTS = (53682, 53683, 53684)
DEMO_CLIENT_ID = "demo-broker"
M2M_CLIENT_ID = "demo-m2m"
DEMO_USERNAME = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_GROUP = "demo-users"
STANDARD_SCOPES = ("openid", "email", "phone", "profile")
DEMO_CLIENT_STANDARD_SCOPES = ("openid", "email", "profile")
ALL_FLOWS = ("code", "refresh_token")
CLIENT_CREDENTIALS = "client_credentials"
DEVICE_CODE = "device_code"  # RFC 8628; NOT a Cognito flow (only with --device-flow)
JWT_BEARER_FLOW = "jwt-bearer"  # may redeem ID-JAGs (--trust-idp); NOT a Cognito flow
WORKLOAD_JWT_FLOW = "workload-jwt"  # may redeem workload JWTs (--trust-workload); NOT Cognito
KNOWN_FLOWS = (*ALL_FLOWS, CLIENT_CREDENTIALS, DEVICE_CODE, JWT_BEARER_FLOW, WORKLOAD_JWT_FLOW)
DEFAULT_DEVICE_CODE_TTL = 600
DEFAULT_DEVICE_INTERVAL = 5
MAX_ROTATION_GRACE_SECONDS = 60
T = TypeVar("T")
POOL_ID_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,50}_[A-Za-z0-9]{1,50}$")


@dataclass(frozen=True)
class UserConfig:
    """A user of the pool. Only the password hash is kept (werkzeug.security)."""

    username: str
    password_hash: str
    email: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientConfig:
    """An app client. With a ``client_secret`` it is confidential (client_secret_basic/post)."""

    client_id: str
    callback_urls: tuple[str, ...]
    allowed_scopes: tuple[str, ...]
    client_secret: str | None = None
    allowed_flows: tuple[str, ...] = ALL_FLOWS
    logout_urls: tuple[str, ...] = ()
    workload_subjects: tuple[str, ...] = ()
    """With the ``workload-jwt`` flow: the workload JWT ``sub`` values this client accepts (empty:
    any subject of a trusted workload issuer)."""


@dataclass(frozen=True)
class ResourceServerConfig:
    """A resource server: custom scopes are ``<identifier>/<name>``."""

    identifier: str
    scopes: tuple[str, ...] = DEFAULT_CUSTOM_SCOPES

    def full_scopes(self) -> tuple[str, ...]:
        return tuple(f"{self.identifier}/{name}" for name in self.scopes)


@dataclass(frozen=True)
class IdpSettings:
    """Everything the local authorization server needs; ``resolved()`` fills in the seeds."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    pool_id: str = DEFAULT_POOL_ID
    access_token_ttl: int = 3600
    id_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 24 * 3600
    code_ttl: int = 300
    refresh_token_rotation: bool = False
    rotation_grace_seconds: int = 0
    advertise_pkce: bool = False
    round_expiry_up: bool = False
    """``exp`` rounded up to a whole second (a token lives at least ``expires_in``); Cognito
    rounds down."""
    auto_login: str | None = None
    demo_password: str | None = None
    m2m_secret: str | None = None
    """Secret of the seeded M2M client ``demo-m2m`` (random per start when not given)."""
    device_flow: bool = False
    """RFC 8628 device authorization grant: NOT Cognito behaviour (Cognito has none)."""
    device_code_ttl: int = DEFAULT_DEVICE_CODE_TTL
    device_interval: int = DEFAULT_DEVICE_INTERVAL
    resource_servers: tuple[ResourceServerConfig, ...] = (
        ResourceServerConfig(DEFAULT_RESOURCE_SERVER),
    )
    users: tuple[UserConfig, ...] = ()
    clients: tuple[ClientConfig, ...] = ()
    keys: SigningKeys | None = None
    enterprise: EnterpriseSettings = field(default_factory=EnterpriseSettings)
    dpop: DpopSettings = field(default_factory=DpopSettings)
    clock: Callable[[], float] = time.time
    seeded: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/{self.pool_id}"

    def validate(self) -> None:
        """Refuse settings that would make the server lie or listen beyond loopback."""
        if self.host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"refusing to bind {self.host!r}: the demo idp binds 127.0.0.1 only")
        if not POOL_ID_PATTERN.match(self.pool_id):
            raise ValueError(f"pool id {self.pool_id!r} is not like <region>_<id>")
        if not 0 <= self.rotation_grace_seconds <= MAX_ROTATION_GRACE_SECONDS:
            raise ValueError("rotation grace must be between 0 and 60 seconds")
        if self.m2m_secret is not None and not self.m2m_secret.strip():
            raise ValueError("the M2M client secret must not be empty")
        names = ("access_token_ttl", "id_token_ttl", "refresh_token_ttl", "code_ttl")
        for name in (*names, "device_code_ttl", "device_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        self.enterprise.validate(self.issuer)
        self.dpop.validate()

    def resolved(self) -> IdpSettings:
        """Add the seeded user, client and keys (idempotent). Config entries win on name clashes."""
        if self.seeded:
            return self
        self.validate()
        password = self.demo_password or secrets.token_urlsafe(12)
        m2m_secret = self.m2m_secret or secrets.token_urlsafe(32)
        configured = {u.username for u in self.users}
        seeds = () if DEMO_USERNAME in configured else demo_users(password)
        users = merge_by(seeds, self.users, key=lambda u: u.username)
        seeded_clients = demo_clients(self.resource_servers, m2m_secret, self.device_flow)
        clients = merge_by(seeded_clients, self.clients, key=lambda c: c.client_id)
        if self.auto_login and self.auto_login not in {u.username for u in users}:
            raise ValueError(f"--auto-login user {self.auto_login!r} does not exist")
        keys = self.keys or SigningKeys.generate()
        return replace(
            self,
            demo_password=password,
            m2m_secret=m2m_secret,
            users=users,
            clients=clients,
            keys=keys,
            seeded=True,
        )


def merge_by(seeds: tuple[T, ...], extra: tuple[T, ...], key: Callable[[T], str]) -> tuple[T, ...]:
    merged = {key(item): item for item in seeds}
    merged.update({key(item): item for item in extra})
    return tuple(merged.values())


def demo_users(password: str) -> tuple[UserConfig, ...]:
    return (UserConfig(DEMO_USERNAME, generate_password_hash(password), DEMO_EMAIL, (DEMO_GROUP,)),)


def loopback_callbacks(ports: tuple[int, ...] = BROKER_CALLBACK_PORTS) -> tuple[str, ...]:
    return tuple(
        f"http://{host}:{port}/callback" for port in ports for host in ("localhost", "127.0.0.1")
    )


def demo_clients(
    resource_servers: tuple[ResourceServerConfig, ...], m2m_secret: str, device_flow: bool = False
) -> tuple[ClientConfig, ...]:
    """``demo-broker`` (public; with ``device_flow`` also allowed the RFC 8628 grant) and
    ``demo-m2m`` (confidential, ``client_credentials`` only, custom scopes only, like a Cognito
    M2M app client)."""
    custom = tuple(scope for rs in resource_servers for scope in rs.full_scopes())
    callbacks = loopback_callbacks()
    broker_flows = (*ALL_FLOWS, DEVICE_CODE) if device_flow else ALL_FLOWS
    return (
        ClientConfig(
            client_id=DEMO_CLIENT_ID,
            callback_urls=callbacks,
            allowed_scopes=DEMO_CLIENT_STANDARD_SCOPES + custom,
            logout_urls=callbacks,
            allowed_flows=broker_flows,
        ),
        ClientConfig(
            client_id=M2M_CLIENT_ID,
            callback_urls=(),
            allowed_scopes=custom,
            client_secret=m2m_secret,
            allowed_flows=(CLIENT_CREDENTIALS,),
        ),
    )
