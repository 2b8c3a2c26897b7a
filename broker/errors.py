"""Every error the broker raises, in one tree (add new classes here, under the right parent).

BrokerError
├── ConfigError              bad or missing configuration (exit code 3)
│   ├── UnsafePathError      a broker directory is group/world-writable or not ours
│   ├── ClientConfigError    an MCP client's config file cannot be changed safely (configure)
│   └── AutostartError       the start-at-login entry cannot be read or written (install)
├── StorageError             the token store cannot be used
│   ├── StorageUnavailable   no usable OS keyring (the message says how to fix it)
│   ├── StorageLocked        the keyring is locked or the unlock prompt was dismissed (retry)
│   ├── StorageTimeout       the keyring did not answer in time (retry)
│   └── LockTimeout          a cross-process file lock was not acquired in time
├── DiscoveryError           metadata could not be found or was refused
│   ├── ResourceMismatch         PRM ``resource`` is not this server (RFC 9728 §3.3)
│   ├── IssuerMismatch           AS metadata ``issuer`` differs (RFC 8414 §3.3)
│   ├── PkceNotSupported         no S256 in ``code_challenge_methods_supported``
│   └── UnsafeEndpoint           an endpoint URL that is not https / loopback http
├── AuthorizationError       the sign-in failed or was refused
│   ├── InteractionRequired  the user must sign in (exit code 4)
│   │   ├── SignInTimeout        nobody completed the sign-in in time
│   │   └── SignInCancelled      the sign-in was cancelled
│   ├── ClientNotAllowed     a local API client may not have this server's token
│   │   └── ConsentRequired      the user has not (yet) allowed this client this server
│   ├── ClientRegistrationRequired  no client id and no way to register one
│   ├── RegistrationFailed       dynamic client registration was refused (RFC 7591)
│   ├── CallbackPortUnavailable  none of the redirect URI ports could be bound
│   ├── CallbackRejected         the authorization response failed state / RFC 9207 checks
│   ├── AuthorizationDenied      the authorization server answered with ``error``
│   ├── TokenRequestFailed       the token endpoint refused (RFC 6749 §5.2)
│   │   └── InvalidGrant             code or refresh token no longer valid
│   └── InsufficientScope        still 403 after one step-up (RFC 6750 §3.1)
├── LocalApiError            the local token API refused a request for another reason
├── AlreadyRunning           another broker already runs for this user (SECURITY #32)
├── TrayUnavailable          no tray icon can be shown here (the broker runs headless)
└── ServerUnreachable        a server could not be reached (exit code 5)
    ├── ResponseLimitExceeded    a response was too big or too slow (SECURITY #39)
    └── BrokerNotRunning         no running broker answers at the published endpoint
        └── StaleEndpoint            endpoint.json names a port held by something else (#17)
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error the broker raises on purpose. Its message is safe to show."""

    exit_code = 1


class ConfigError(BrokerError):
    exit_code = 3


class UnsafePathError(ConfigError):
    """A directory holding secrets is writable by others or owned by another user (#16)."""


class ClientConfigError(ConfigError):
    """An MCP client's config file is unparsable, has comments, or holds a foreign entry under
    the name asked for; nothing was written."""


class AutostartError(ConfigError):
    """The start-at-login entry could not be written or removed."""


class StorageError(BrokerError):
    """The store could not do what was asked. ``retryable`` says whether trying later may help."""

    retryable = False


class StorageUnavailable(StorageError):
    """No usable OS keyring. Never answered by a plaintext fallback (SECURITY #46)."""


class StorageLocked(StorageError):
    """The keyring is locked or its unlock prompt was dismissed; nothing was changed (#48)."""

    retryable = True


class StorageTimeout(StorageError):
    """The keyring did not answer in time; the outcome of a write is unknown (#47)."""

    retryable = True


class LockTimeout(StorageError):
    """Another process held a broker file lock for longer than the timeout."""

    retryable = True


class DiscoveryError(BrokerError):
    pass


class ResourceMismatch(DiscoveryError):
    """Protected Resource Metadata names another resource than the server it was fetched for."""


class IssuerMismatch(DiscoveryError):
    """Authorization server metadata ``issuer`` is not the issuer its URL was built from."""


class PkceNotSupported(DiscoveryError):
    """The authorization server does not advertise PKCE S256 and no provider profile vouches."""


class UnsafeEndpoint(DiscoveryError):
    """An endpoint URL with a scheme other than https (or http on a loopback host)."""


class AuthorizationError(BrokerError):
    pass


class InteractionRequired(AuthorizationError):
    """No usable token and no way to get one without the user."""

    exit_code = 4
    error = "interaction_required"


class SignInTimeout(InteractionRequired):
    pass


class SignInCancelled(InteractionRequired):
    pass


class ClientRegistrationRequired(AuthorizationError):
    """The authorization server offers no registration: the user must configure a client id."""

    error = "invalid_client"


class RegistrationFailed(AuthorizationError):
    pass


class CallbackPortUnavailable(AuthorizationError):
    pass


class CallbackRejected(AuthorizationError):
    """The authorization response failed the state or ``iss`` checks (RFC 9207 §2.4).

    Its message never repeats the response's ``error`` parameters: they come from an unknown
    party.
    """

    error = "invalid_request"


class ClientNotAllowed(AuthorizationError):
    """The local API refused this client this server (its allowlist, or the user said no)."""

    error = "access_denied"


class ConsentRequired(ClientNotAllowed):
    """The user has not yet allowed this client this server; they are being asked."""

    error = "consent_required"


class AuthorizationDenied(AuthorizationError):
    """The authorization server redirected back with ``error`` (RFC 6749 §4.1.2.1)."""

    access_denied = "access_denied"

    def __init__(self, message: str, error: str = "", description: str = "") -> None:
        super().__init__(message)
        self.error = error
        self.description = description


class TokenRequestFailed(AuthorizationError):
    """The token endpoint answered with an error (RFC 6749 §5.2)."""

    def __init__(self, message: str, error: str = "", status_code: int = 0) -> None:
        super().__init__(message)
        self.error = error
        self.status_code = status_code


class InvalidGrant(TokenRequestFailed):
    """The authorization code or refresh token is invalid, expired or revoked."""

    wire_error = "invalid_grant"


class InsufficientScope(AuthorizationError):
    error = "insufficient_scope"


class ServerUnreachable(BrokerError):
    exit_code = 5


class ResponseLimitExceeded(ServerUnreachable):
    """A metadata or token response was larger or slower than the broker allows."""


class BrokerNotRunning(ServerUnreachable):
    """No broker is running, or it did not answer at the URL in ``endpoint.json``."""


class StaleEndpoint(BrokerNotRunning):
    """``endpoint.json`` names a port whose listener cannot prove it knows the secret (#17).

    The secret was not sent.
    """


class LocalApiError(BrokerError):
    """The local token API answered with an error not covered by a more specific class."""

    def __init__(self, message: str, error: str = "", status_code: int = 0) -> None:
        super().__init__(message)
        self.error = error
        self.status_code = status_code


class AlreadyRunning(BrokerError):
    """Another broker process holds this user's instance lock; the message names it (#32)."""

    exit_code = 6


class TrayUnavailable(BrokerError):
    """No display, no session bus or no working tray backend; the message says which."""
