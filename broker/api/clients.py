"""Clients of the local token API: who may ask for which server's token, and the record of it.

- The **default client** is the user's own: its secret is generated at each broker start and
  published only in ``endpoint.json`` (0600). It may ask for any configured server.
- **Named clients** (``mcp-broker clients add NAME [--resource URL ...]``) have their own secret,
  shown once at creation; only its SHA-256 is kept, in ``clients.json`` (0600, state dir). Secrets
  are 256 random bits, so a plain hash is as strong as a slow one here.
- A named client with ``--resource`` URLs is **scoped** to them: asking for another server is
  refused (403 ``access_denied``) before the token side is touched (SECURITY #12). The URLs given
  at ``add`` count as consented: the user typed them.
- A named client without ``--resource`` may ask for any configured server, but the **first time**
  it asks for one the user is asked (allow once / always / deny) through a pluggable prompt. The
  API never waits for the answer: it says ``consent_required`` at once and the client retries.
  Headless, the default prompt logs one line naming the client and the command that allows it:
  ``mcp-broker clients allow NAME URL``. "Always" is stored; "deny" lasts until the broker stops.
- Every answer is recorded in the **audit log** (:mod:`broker.api.audit`), never a token.

The running broker re-reads ``clients.json`` when it changes, so CLI edits apply at once.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from broker.api.audit import AuditLog
from broker.errors import ConfigError
from broker.filelock import lock_for
from broker.oauth.resource import canonical_resource
from broker.paths import BrokerPaths, ensure_private_dir, write_private_file

logger = logging.getLogger(__name__)

DEFAULT_CLIENT = "default"
CLIENTS_FILE = "clients.json"
SECRET_PREFIX = "mcpb_"  # noqa: S105 - a prefix, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ONCE_LIFETIME = 600.0  # seconds an "allow once" waits for the client's retry


def new_secret() -> str:
    """A client secret: 256 random bits, with a prefix secret scanners can spot."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_digest(secret: bytes | str) -> bytes:
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).digest()


def check_name(name: str) -> str:
    if not _NAME.match(name) or name == DEFAULT_CLIENT:
        raise ConfigError(
            "a client name is 1-64 letters, digits, '.', '_' or '-', and not 'default'"
        )
    return name


@dataclass(frozen=True)
class Client:
    """An API client. ``resources`` None: any configured server, each asked about once."""

    name: str
    digest: bytes = field(repr=False)
    resources: tuple[str, ...] | None = None
    allowed: frozenset[str] = frozenset()
    created_at: float = 0.0

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_CLIENT

    @property
    def scoped(self) -> bool:
        return self.resources is not None


class Decision(enum.Enum):
    ALLOW_ONCE = "allow_once"
    ALLOW_ALWAYS = "allow_always"
    DENY = "deny"


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    NOT_IN_SCOPE = "not_in_scope"
    DENIED = "denied"
    CONSENT_REQUIRED = "consent_required"


@dataclass(frozen=True)
class ConsentRequest:
    """What the user is asked: may ``client`` have tokens for ``resource``? ``answer`` takes
    the user's decision back to the registry that asked (not part of the question: two requests
    for the same client and server are the same question)."""

    client: str
    resource: str
    answer: Callable[[Decision], None] | None = field(default=None, compare=False, repr=False)


ConsentPrompt = Callable[[ConsentRequest], None]
"""Shows the question and returns at once; the answer comes back through ``request.answer``
(:meth:`ApiClients.decide`). Called at most once per pending question."""


def log_consent_prompt(request: ConsentRequest) -> None:
    """The headless prompt: one log line naming the client and how to allow it."""
    logger.warning(
        "API client %r asks for tokens for %s; allow it with: mcp-broker clients allow %s %s",
        request.client,
        request.resource,
        request.client,
        request.resource,
    )


# -- the clients file -------------------------------------------------------------------------


def _client_from_json(name: str, entry: dict[str, Any]) -> Client:
    resources = entry.get("resources")
    return Client(
        name=name,
        digest=bytes.fromhex(entry["secret_sha256"]),
        resources=None if resources is None else tuple(resources),
        allowed=frozenset(entry.get("allowed", ())),
        created_at=float(entry.get("created_at", 0.0)),
    )


def _client_to_json(client: Client) -> dict[str, Any]:
    return {
        "secret_sha256": client.digest.hex(),
        "resources": None if client.resources is None else list(client.resources),
        "allowed": sorted(client.allowed),
        "created_at": client.created_at,
    }


class ClientsFile:
    """``clients.json``: named clients, their secret hashes, scopes and stored consents."""

    def __init__(self, state_dir: Path, lock_dir: Path) -> None:
        self.path = state_dir / CLIENTS_FILE
        self._lock_dir = lock_dir

    def load(self) -> dict[str, Client]:
        try:
            doc = json.loads(self.path.read_bytes())
            entries = doc["clients"]
            return {name: _client_from_json(name, entry) for name, entry in entries.items()}
        except FileNotFoundError:
            return {}
        except RecursionError:
            raise ConfigError(
                f"{self.path} is damaged (nested too deeply); remove it to start over"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{self.path} is damaged ({exc}); remove it to start over") from None

    def stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def update(self, change: Callable[[dict[str, Client]], dict[str, Client]]) -> None:
        ensure_private_dir(self.path.parent)
        with lock_for("clients.json", self._lock_dir):
            clients = change(self.load())
            doc = {"version": 1, "clients": {n: _client_to_json(c) for n, c in clients.items()}}
            write_private_file(self.path, json.dumps(doc, indent=2, sort_keys=True) + "\n")

    # -- the CLI's operations -----------------------------------------------------------------

    def add(self, name: str, resources: list[str] | None) -> str:
        """Create a client; return its secret (the only time it is known)."""
        check_name(name)
        scope = None if not resources else tuple(sorted({canonical_resource(r) for r in resources}))
        secret = new_secret()

        def add(clients: dict[str, Client]) -> dict[str, Client]:
            if name in clients:
                raise ConfigError(f"a client named {name!r} exists; remove it first")
            allowed = frozenset(scope or ())
            return {
                **clients,
                name: Client(name, secret_digest(secret), scope, allowed, time.time()),
            }

        self.update(add)
        return secret

    def remove(self, name: str) -> bool:
        found = False

        def remove(clients: dict[str, Client]) -> dict[str, Client]:
            nonlocal found
            found = clients.pop(name, None) is not None
            return clients

        self.update(remove)
        return found

    def allow(self, name: str, resource: str) -> None:
        """Store "always" consent; a scoped client's scope grows by the resource too."""
        url = canonical_resource(resource)

        def allow(clients: dict[str, Client]) -> dict[str, Client]:
            client = clients.get(name)
            if client is None:
                raise ConfigError(f"no client named {name!r}")
            scope = client.resources
            if scope is not None and url not in scope:
                scope = tuple(sorted({*scope, url}))
            clients[name] = replace(client, resources=scope, allowed=client.allowed | {url})
            return clients

        self.update(allow)


# -- the registry the API asks ----------------------------------------------------------------


class ApiClients:
    """The running broker's view of its clients: authentication, scope, consent, audit."""

    def __init__(
        self,
        paths: BrokerPaths,
        *,
        default_secret: str | None = None,
        consent_prompt: ConsentPrompt = log_consent_prompt,
    ) -> None:
        ensure_private_dir(paths.state_dir)
        self.file = ClientsFile(paths.state_dir, paths.lock_dir)
        self.audit = AuditLog(paths.audit_log)
        self.default_secret = default_secret or new_secret()
        self._default = Client(DEFAULT_CLIENT, secret_digest(self.default_secret))
        self.consent_prompt = consent_prompt
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._named: dict[str, Client] = {}
        self._denied: set[tuple[str, str]] = set()
        self._once: dict[tuple[str, str], float] = {}
        self._pending: set[tuple[str, str]] = set()
        self._reload()

    # -- authentication -------------------------------------------------------------------------

    def authenticate(self, presented: bytes) -> Client | None:
        """The client whose secret is ``presented``, compared in constant time, or None."""
        digest = secret_digest(presented)
        if hmac.compare_digest(digest, self._default.digest):
            return self._default
        found = None
        for client in self._named_clients().values():
            if hmac.compare_digest(digest, client.digest) and found is None:
                found = client  # no early exit: every client is compared
        return found

    def hello_key(self, name: str | None) -> bytes | None:
        """The key a client can prove the server with: SHA-256 of its secret (None: unknown)."""
        if name in (None, DEFAULT_CLIENT):
            return self._default.digest
        client = self._named_clients().get(str(name))
        return None if client is None else client.digest

    # -- authorisation ----------------------------------------------------------------------------

    def check(self, client: Client, resource: str) -> Verdict:
        """May ``client`` have tokens for ``resource`` (canonical)? Asks the user when new."""
        if client.is_default:
            return Verdict.ALLOWED
        current = self._named_clients().get(client.name, client)
        if current.resources is not None and resource not in current.resources:
            return Verdict.NOT_IN_SCOPE
        if resource in current.allowed:
            return Verdict.ALLOWED
        key = (client.name, resource)
        with self._lock:
            if key in self._denied:
                return Verdict.DENIED
            granted = self._once.pop(key, None)
            if granted is not None and time.monotonic() - granted < _ONCE_LIFETIME:
                return Verdict.ALLOWED
            ask = key not in self._pending
            self._pending.add(key)
        if ask:
            self._ask(ConsentRequest(client.name, resource))
        return Verdict.CONSENT_REQUIRED

    def decide(self, request: ConsentRequest, decision: Decision) -> None:
        """The user's answer to a consent question (the tray calls this)."""
        key = (request.client, request.resource)
        if decision is Decision.ALLOW_ALWAYS:
            self.file.allow(request.client, request.resource)
            self._reload()
        with self._lock:
            self._pending.discard(key)
            if decision is Decision.ALLOW_ONCE:
                self._once[key] = time.monotonic()
            elif decision is Decision.DENY:
                self._denied.add(key)
            else:
                self._denied.discard(key)
        logger.info("API client %r, %s: %s", request.client, request.resource, decision.value)

    def visible_to(self, client: Client, resources: list[str]) -> list[str]:
        """The servers ``client`` may see in ``/v1/status``: all for the default client."""
        if client.is_default:
            return resources
        current = self._named_clients().get(client.name, client)
        return [r for r in resources if r in current.allowed]

    def close(self) -> None:
        self.audit.flush()

    # -- internals --------------------------------------------------------------------------------

    def _ask(self, request: ConsentRequest) -> None:
        try:
            self.consent_prompt(replace(request, answer=functools.partial(self.decide, request)))
        except Exception:
            logger.exception("the consent prompt failed for API client %r", request.client)
            with self._lock:
                self._pending.discard((request.client, request.resource))

    def _named_clients(self) -> dict[str, Client]:
        if self.file.stamp() != self._stamp:
            self._reload()
        return self._named

    def _reload(self) -> None:
        stamp = self.file.stamp()
        try:
            named = self.file.load()
        except ConfigError as exc:
            logger.error("%s; named API clients are refused until it is fixed", exc)
            named = {}
        with self._lock:
            self._named, self._stamp = named, stamp
