"""Every error the broker raises, in one tree (add new classes here, under the right parent).

Each class carries its exit code (the ``mcp-broker`` commands exit with it) and how the local
token API answers with it (DESIGN §3): ``http_status`` and the wire ``error`` code
(``wire_error``), inherited like any class attribute. The classes marked ``answer=True`` are the
ones the API's client side raises for an answer (:func:`from_wire`); every other class is
answered as its nearest marked ancestor's answer, or for the branches with none, as
``ServerUnreachable`` (the token side cannot answer now: 503 ``temporarily_unavailable``).

BrokerError                                         (answered as 503 temporarily_unavailable)
├── ConfigError              bad or missing configuration (exit code 3)   404 invalid_target
│   ├── UnsafePathError      a broker directory is group/world-writable or not ours
│   ├── ClientConfigError    an MCP client's config file cannot be changed safely (configure)
│   └── AutostartError       the start-at-login entry cannot be read or written (install)
├── StorageError             the token store cannot be used                (Retry-After: 5)
│   ├── StorageUnavailable   no usable OS keyring (the message says how to fix it)
│   ├── StorageLocked        the keyring is locked or the unlock prompt was dismissed (retry)
│   ├── StorageTimeout       the keyring did not answer in time (retry)
│   └── LockTimeout          a cross-process file lock was not acquired in time
├── DiscoveryError           metadata could not be found or was refused
│   ├── ResourceMismatch         PRM ``resource`` is not this server (RFC 9728 §3.3)
│   ├── IssuerMismatch           AS metadata ``issuer`` differs (RFC 8414 §3.3)
│   ├── PkceNotSupported         no S256 in ``code_challenge_methods_supported``
│   └── UnsafeEndpoint           an endpoint URL that is not https / loopback http
├── AuthorizationError       the sign-in failed or was refused     409 interaction_required
│   ├── InteractionRequired  the user must sign in (exit code 4)
│   │   ├── SignInTimeout        nobody completed the sign-in in time
│   │   └── SignInCancelled      the sign-in was cancelled
│   ├── ClientNotAllowed     a local API client may not have this server's token  403 access_denied
│   │   └── ConsentRequired      the user has not (yet) allowed it this server  403 consent_required
│   ├── ClientRegistrationRequired  no client id and no way to register one
│   ├── RegistrationFailed       dynamic client registration was refused (RFC 7591)
│   ├── CallbackPortUnavailable  none of the redirect URI ports could be bound
│   ├── CallbackRejected         the authorization response failed state / RFC 9207 checks
│   ├── AuthorizationDenied      the authorization server answered with ``error``
│   ├── TokenRequestFailed       the token endpoint refused (RFC 6749 §5.2)
│   │   └── InvalidGrant             code or refresh token no longer valid
│   └── InsufficientScope        the token lacks a scope (RFC 6750 §3.1)  403 insufficient_scope
├── LocalApiError            the local token API refused a request (an answer not listed below)
│   ├── InvalidRequest           malformed request                       400 invalid_request
│   ├── InvalidClient            no or a wrong client secret              401 invalid_client
│   ├── RequestForbidden         a request shape the API never serves          403 forbidden
│   ├── NoSuchEndpoint           no such path                                  404 not_found
│   ├── MethodNotAllowed         wrong method                         405 method_not_allowed
│   ├── PayloadTooLarge          body over the limit                     413 invalid_request
│   ├── UnsupportedMediaType     body not JSON                           415 invalid_request
│   └── ApiServerError           a bug in the broker                        500 server_error
├── DpopBound                the server's tokens are DPoP-bound: only the bridge can use them
│                                                    (exit code 3)    403 dpop_bound
├── AlreadyRunning           another broker already runs for this user (SECURITY #32; exit 6)
├── TrayUnavailable          no tray icon can be shown here (the broker runs headless)
└── ServerUnreachable        a server could not be reached (exit 5)  503 temporarily_unavailable
    ├── ResponseLimitExceeded    a response was too big or too slow (SECURITY #39)
    ├── ApiBusy                  the API's token side is busy (a keyring prompt) (Retry-After: 1)
    └── BrokerNotRunning         no running broker answers at the published endpoint
        └── StaleEndpoint            endpoint.json names a port held by something else (#17)

Wire codes follow OAuth where one fits (RFC 6749 §5.2, RFC 6750 §3.1, RFC 8707 §2
``invalid_target``, OIDC ``interaction_required``); an answer's ``error_description`` is the
error's message, which the broker wrote (never an echo of a header or the query string).
"""

from __future__ import annotations

from typing import Any, ClassVar

_ANSWERS: dict[tuple[int, str], type[BrokerError]] = {}


class BrokerError(Exception):
    """Base of every error the broker raises on purpose. Its message is safe to show."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 503
    wire_error: ClassVar[str] = "temporarily_unavailable"
    #: Seconds a client should wait before asking again (sent with a 503 answer only).
    retry_after: ClassVar[int] = 10

    def __init_subclass__(cls, *, answer: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if answer:
            taken = _ANSWERS.setdefault((cls.http_status, cls.wire_error), cls)
            if taken is not cls:
                raise TypeError(f"{cls.__name__} answers as {taken.__name__} already does")

    def headers(self) -> dict[str, str]:
        """The headers of the API's answer with this error."""
        return {"Retry-After": str(self.retry_after)} if self.http_status == 503 else {}


def from_wire(status: int, error: str, description: str) -> BrokerError:
    """The error a client of the local token API raises for an error answer: the class that
    answers with this status and code, else :class:`LocalApiError` naming them."""
    cls = _ANSWERS.get((status, error))
    if cls is None:
        return LocalApiError(f"the broker refused: {error or status}: {description}")
    return cls(description)


def as_answered(exc: BrokerError) -> BrokerError:
    """``exc`` as a client of the token API would see it (same message, the answer's class):
    a command gives the same exit code whether the API or the library answered it."""
    return from_wire(exc.http_status, exc.wire_error, str(exc))


class ConfigError(BrokerError, answer=True):
    exit_code = 3
    http_status = 404
    wire_error = "invalid_target"  # RFC 8707 §2: not a configured MCP server


class UnsafePathError(ConfigError):
    """A directory holding secrets is writable by others or owned by another user (#16)."""


class ClientConfigError(ConfigError):
    """An MCP client's config file is unparsable, has comments, or holds a foreign entry under
    the name asked for; nothing was written."""


class AutostartError(ConfigError):
    """The start-at-login entry could not be written or removed."""


class StorageError(BrokerError):
    """The store could not do what was asked."""

    retry_after = 5


class StorageUnavailable(StorageError):
    """No usable OS keyring. Never answered by a plaintext fallback (SECURITY #46)."""


class StorageLocked(StorageError):
    """The keyring is locked or its unlock prompt was dismissed; nothing was changed (#48)."""


class StorageTimeout(StorageError):
    """The keyring did not answer in time; the outcome of a write is unknown (#47)."""


class LockTimeout(StorageError):
    """Another process held a broker file lock for longer than the timeout."""


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
    """A sign-in failed or a refresh was refused: to a client of the API, a sign-in is needed."""

    http_status = 409
    wire_error = "interaction_required"  # OIDC Core §3.1.2.6


class InteractionRequired(AuthorizationError, answer=True):
    """No usable token and no way to get one without the user. Answered at once, never after
    waiting on a sign-in."""

    exit_code = 4


class SignInTimeout(InteractionRequired):
    pass


class SignInCancelled(InteractionRequired):
    pass


class ClientRegistrationRequired(AuthorizationError):
    """The authorization server offers no registration: the user must configure a client id."""


class RegistrationFailed(AuthorizationError):
    pass


class CallbackPortUnavailable(AuthorizationError):
    pass


class CallbackRejected(AuthorizationError):
    """The authorization response failed the state or ``iss`` checks (RFC 9207 §2.4).

    Its message never repeats the response's ``error`` parameters: they come from an unknown
    party.
    """


class ClientNotAllowed(AuthorizationError, answer=True):
    """The local API refused this client this server (its allowlist, or the user said no)."""

    http_status = 403
    wire_error = "access_denied"


class ConsentRequired(ClientNotAllowed, answer=True):
    """The user has not yet allowed this client this server; they are being asked."""

    wire_error = "consent_required"


class AuthorizationDenied(AuthorizationError):
    """The authorization server redirected back with ``error`` (RFC 6749 §4.1.2.1): its code."""

    def __init__(self, message: str, error: str = "") -> None:
        super().__init__(message)
        self.error = error


class TokenRequestFailed(AuthorizationError):
    """The token endpoint answered with an error (RFC 6749 §5.2): the authorization server's
    ``error`` code and HTTP status, which decide whether a refresh may be tried again."""

    def __init__(self, message: str, error: str = "", status_code: int = 0) -> None:
        super().__init__(message)
        self.error = error
        self.status_code = status_code


class InvalidGrant(TokenRequestFailed):
    """The authorization code or refresh token is invalid, expired or revoked."""


class InsufficientScope(AuthorizationError, answer=True):
    """The token lacks a scope the client or the server asked for (RFC 6750 §3.1)."""

    http_status = 403
    wire_error = "insufficient_scope"


class LocalApiError(BrokerError):
    """The local token API refused a request. Raised as itself for an answer no class below
    (or elsewhere in the tree) gives."""

    http_status = 400
    wire_error = "invalid_request"


class InvalidRequest(LocalApiError, answer=True):
    """Malformed body, wrong types, unknown fields, a query string."""


class InvalidClient(LocalApiError, answer=True):
    """No client secret, or a wrong one (RFC 6750 §3: the challenge names the scheme)."""

    http_status = 401
    wire_error = "invalid_client"

    def __init__(self, message: str, *, presented: bool = False) -> None:
        super().__init__(message)
        self.presented = presented

    def headers(self) -> dict[str, str]:
        challenge = 'Bearer realm="mcp-broker"'
        if self.presented:
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}


class RequestForbidden(LocalApiError, answer=True):
    """A request shape the API never serves: browser, proxy, wrong Host (SECURITY #4–#11)."""

    http_status = 403
    wire_error = "forbidden"


class NoSuchEndpoint(LocalApiError, answer=True):
    http_status = 404
    wire_error = "not_found"


class MethodNotAllowed(LocalApiError, answer=True):
    http_status = 405
    wire_error = "method_not_allowed"


class PayloadTooLarge(LocalApiError, answer=True):
    http_status = 413


class UnsupportedMediaType(LocalApiError, answer=True):
    http_status = 415


class ApiServerError(LocalApiError, answer=True):
    """An unexpected error in the API (a bug): logged by the broker, answered without detail."""

    http_status = 500
    wire_error = "server_error"


class DpopBound(BrokerError, answer=True):
    """The server's tokens are bound to a DPoP key the broker holds (RFC 9449): a token alone
    is useless to a client, so the token API and ``token``/``headers`` refuse it and name the
    bridge (``mcp-broker connect URL``), which signs a proof for every request itself."""

    exit_code = 3
    http_status = 403
    wire_error = "dpop_bound"


class AlreadyRunning(BrokerError):
    """Another broker process holds this user's instance lock; the message names it (#32)."""

    exit_code = 6


class TrayUnavailable(BrokerError):
    """No display, no session bus or no working tray backend; the message says which."""


class ServerUnreachable(BrokerError, answer=True):
    """A server (or the token side, for a client of the API) cannot answer now; retry later."""

    exit_code = 5


class ResponseLimitExceeded(ServerUnreachable):
    """A metadata or token response was larger or slower than the broker allows."""


class ApiBusy(ServerUnreachable):
    """The API's token side did not answer within the call timeout (a keyring prompt may be
    waiting)."""

    retry_after = 1


class BrokerNotRunning(ServerUnreachable):
    """No broker is running, or it did not answer at the URL in ``endpoint.json``."""


class StaleEndpoint(BrokerNotRunning):
    """``endpoint.json`` names a port whose listener cannot prove it knows the secret (#17).

    The secret was not sent.
    """
