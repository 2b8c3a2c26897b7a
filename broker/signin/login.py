"""The browser step of signing in: Authorization Code + PKCE in the system browser.

:class:`SignIn` binds the loopback listener, gets a client identity (pre-registered, Client ID
Metadata Document or Dynamic Client Registration), opens the authorization URL with ``opener``
(``webbrowser.open``, so ``$BROWSER`` chooses the browser; tests inject an authorizer), waits
for the response, checks it (:mod:`broker.oauth.callback_params`) and redeems the code. One
sign-in per server at a time is the business of :mod:`broker.signin.flow`, which every caller
goes through; the refresh grant is :mod:`broker.tokens.grant`.
"""

from __future__ import annotations

import logging
import threading
import time
import webbrowser
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Literal

from broker.config import server_label
from broker.errors import AuthorizationError, BrokerError, ClientRegistrationRequired
from broker.oauth.as_metadata import AuthServer, require_code_flow
from broker.oauth.authorize import AuthorizationRequest, build_authorization_request
from broker.oauth.callback_params import authorization_code, is_our_callback
from broker.oauth.discovery import Discovered
from broker.oauth.registration import (
    ClientCredentials,
    Registration,
    build_registration_request,
    choose_registration,
    handle_registration_response,
    metadata_document_client,
)
from broker.oauth.token_request import build_token_request, handle_token_response
from broker.signin.callback import TRY_AGAIN, CallbackListener
from broker.signin.discovery import Sender
from broker.tokens.tokenset import TokenKey, TokenSet

logger = logging.getLogger(__name__)

Opener = Callable[[str], object]

DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Headless:
    """A sign-in with no browser on this machine (``mcp-broker login --no-browser``,
    ``--device``): ``tell`` shows the user a line on the terminal.

    ``paste``: the authorization URL is shown instead of opened; the user opens it anywhere and
    pastes the address the browser ends on into ``paste_from`` (:class:`PasteReader`), or the
    loopback callback arrives, whichever first. ``device``: the device authorization grant
    (RFC 8628). ``auto``: ``device`` when the authorization server offers it, else ``paste``.
    ``link`` (the tray's "Copy sign-in link"): the authorization URL alone is handed to
    ``tell``, once; the user opens it in a browser of their choosing on this machine and only
    the loopback callback completes the sign-in.
    """

    mode: Literal["paste", "device", "auto", "link"]
    tell: Callable[[str], object]
    paste_from: IO[str] | None = None


@dataclass(frozen=True)
class SignInOptions:
    """Per-server sign-in settings (from configuration)."""

    #: Provider profile name (``cognito``); None picks one from the issuer.
    profile: str | None = None
    #: Send the RFC 8707 ``resource`` parameter (off for authorization servers that reject it).
    send_resource: bool = True
    #: Callback ports to try in order; None uses the provider profile's (or an ephemeral port).
    callback_ports: tuple[int, ...] | None = None
    timeout: float = DEFAULT_TIMEOUT
    #: None: the browser on this machine, opened by the opener.
    headless: Headless | None = None


class ClientRegistry:
    """Client identities by issuer: configured (pre-registered) ones and those the broker
    registered itself. A credential is only ever used with the issuer it is bound to."""

    def __init__(
        self,
        preregistered: Iterable[ClientCredentials] = (),
        client_metadata_url: str | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._preregistered = {c.issuer: c for c in preregistered}
        self._registered: dict[str, ClientCredentials] = {}
        self.client_metadata_url = client_metadata_url

    def add_preregistered(self, client: ClientCredentials) -> None:
        with self._lock:
            self._preregistered[client.issuer] = client

    def preregistered(self, issuer: str) -> ClientCredentials | None:
        with self._lock:
            return self._preregistered.get(issuer)

    def registered(self, issuer: str) -> ClientCredentials | None:
        with self._lock:
            return self._registered.get(issuer)

    def remember(self, client: ClientCredentials) -> None:
        with self._lock:
            self._registered[client.issuer] = client

    def find(self, issuer: str, client_id: str) -> ClientCredentials | None:
        for client in (self.preregistered(issuer), self.registered(issuer)):
            if client is not None and client.client_id == client_id:
                return client
        if client_id == self.client_metadata_url:
            return metadata_document_client(client_id, issuer)
        return None


class SignIn:
    def __init__(
        self, send: Sender, clients: ClientRegistry, opener: Opener = webbrowser.open
    ) -> None:
        self._send = send
        self._clients = clients
        self._opener = opener

    def sign_in(
        self, found: Discovered, scope: str | None, options: SignInOptions | None = None
    ) -> TokenSet:
        """Sign in for ``found`` in the browser."""
        return self._run(found, scope, options or SignInOptions())

    def _run(self, found: Discovered, scope: str | None, options: SignInOptions) -> TokenSet:
        from broker.oauth.device import supports_device_flow

        server = found.auth_server
        headless = options.headless
        if headless is not None and headless.mode == "device" and not supports_device_flow(server):
            raise AuthorizationError(
                f"{server.issuer} offers no device sign-in (no device_authorization_endpoint); "
                "sign in with --no-browser instead"
            )
        device_ok = headless is not None and headless.mode in ("device", "auto")
        if headless is not None and device_ok and supports_device_flow(server):
            return self._device(found, scope, options, headless)
        # The authorization code needs PKCE S256 (MCP authorization: refuse to proceed without
        # it) and an authorization endpoint: refused before a port is bound or a client registered.
        require_code_flow(server)
        ports = options.callback_ports
        listener: CallbackListener[str] = CallbackListener.bind(
            server.profile.callback_ports if ports is None else ports
        )
        try:
            client = self._client_for(server, listener.redirect_uri, scope)
            request = build_authorization_request(
                server,
                client,
                listener.redirect_uri,
                scope,
                found.resource if options.send_resource else None,
            )
            listener.expect(
                lambda p: is_our_callback(p, request), lambda p: authorization_code(p, request)
            )
            if headless is not None and headless.mode == "link":
                logger.info("handing out the sign-in link for %s", server.issuer)
                headless.tell(request.url)
            elif headless is not None:
                self._show_link(request, listener, headless)
            else:
                logger.info("opening the browser to sign in at %s", server.issuer)
                if self._opener(request.url) is False:
                    raise AuthorizationError("no browser could be opened (set BROWSER)")
            listener.wait_for_outcome()  # the page then says who was signed in to what
            code = listener.wait(options.timeout)
            try:
                tokens = self._redeem(found, request, code)
            except BaseException as exc:
                listener.show(400, "Sign-in failed", failure_page_text(exc))
                raise
            listener.show(200, "Signed in", success_page_text(found, tokens))
            return tokens
        finally:
            listener.close()

    def _show_link(
        self, request: AuthorizationRequest, listener: CallbackListener[str], headless: Headless
    ) -> None:
        import sys

        from broker.signin.headless import PasteReader

        headless.tell("Open this link in a browser on any machine and sign in:")
        headless.tell("")
        headless.tell(f"  {request.url}")
        headless.tell("")
        headless.tell(
            "The browser then ends on an address starting with "
            f"{request.redirect_uri} (it may say it cannot connect). Copy that whole address "
            "from the address bar and paste it here:"
        )
        PasteReader(headless.paste_from or sys.stdin, request, listener, headless.tell).start()

    def _device(
        self, found: Discovered, scope: str | None, options: SignInOptions, headless: Headless
    ) -> TokenSet:
        from broker.oauth.device import DeviceAuthorization
        from broker.signin.headless import device_sign_in

        server = found.auth_server
        client = self._clients.preregistered(server.issuer)
        cimd_url = self._clients.client_metadata_url
        how = choose_registration(server, client, cimd_url)
        if how is Registration.CIMD and cimd_url is not None:
            client = metadata_document_client(cimd_url, server.issuer)
        elif how is not Registration.PREREGISTERED or client is None:
            raise ClientRegistrationRequired(
                "the device sign-in needs a client id allowed the device flow: "
                "mcp-broker add URL --client-id ID"
            )

        def show(authorization: DeviceAuthorization) -> None:
            headless.tell(f"To sign in, open {authorization.verification_uri} on any device")
            headless.tell(f"and enter the code:  {authorization.user_code}")
            if authorization.verification_uri_complete:
                headless.tell(f"(or open {authorization.verification_uri_complete})")
                _print_qr(authorization.verification_uri_complete, headless.tell)
            headless.tell("Waiting for the sign-in to be approved…")

        resource = found.resource if options.send_resource else None
        return device_sign_in(self._send, found, client, scope, resource, show)

    def _redeem(self, found: Discovered, request: AuthorizationRequest, code: str) -> TokenSet:
        key = TokenKey(found.issuer, request.client.client_id, found.resource)
        token_request = build_token_request(
            request.server,
            request.client,
            code,
            request.pkce.verifier,
            request.redirect_uri,
            request.resource,
        )
        sent = time.time()
        response = self._send(token_request)
        tokens = handle_token_response(
            response,
            key,
            request.scope,
            now=sent,
            exp_claim=request.server.profile.jwt_access_tokens,
            received=time.time(),
        )
        logger.info("signed in to %s at %s", found.resource, found.issuer)
        return tokens

    def _client_for(
        self, server: AuthServer, redirect_uri: str, scope: str | None
    ) -> ClientCredentials:
        pre = self._clients.preregistered(server.issuer)
        cimd_url = self._clients.client_metadata_url
        how = choose_registration(server, pre, cimd_url)
        if how is Registration.PREREGISTERED and pre is not None:
            return pre
        if how is Registration.CIMD and cimd_url is not None:
            return metadata_document_client(cimd_url, server.issuer)
        known = self._clients.registered(server.issuer)
        if known is not None and known.accepts_redirect(redirect_uri):
            return known
        if not server.registration_endpoint:
            raise ClientRegistrationRequired(f"{server.issuer} offers no client registration")
        logger.info("registering the broker with %s", server.issuer)
        response = self._send(build_registration_request(server, redirect_uri, scope))
        client = handle_registration_response(response, server, redirect_uri)
        self._clients.remember(client)
        return client


def _print_qr(text: str, tell: Callable[[str], object]) -> None:
    """A terminal QR code of ``text`` when a QR library happens to be installed (``segno``);
    nothing otherwise: the link and the code are enough."""
    try:
        import segno  # type: ignore[import-not-found]
    except ImportError:
        return
    import io

    out = io.StringIO()
    segno.make(text, error="l").terminal(out=out, compact=True)
    for line in out.getvalue().splitlines():
        tell(line)


def success_page_text(found: Discovered, tokens: TokenSet) -> str:
    """Which server and which user were signed in (never a token): the server's PRM
    ``resource_name`` when it has one, else its host and path; the user from the ID token or a
    Cognito access token (``TokenSet.user``, display only)."""
    name = found.prm.resource_name if found.prm is not None else None
    server = server_label(found.server_url, name)
    who = f" as {tokens.user}" if tokens.user else ""
    return (
        f"Signed in to {server}{who}. You can close this tab and return to your MCP client: "
        "the broker now gives it tokens."
    )


def failure_page_text(exc: BaseException) -> str:
    """What went wrong (the error's own text, never a secret) and what to do next."""
    reason = str(exc) if isinstance(exc, BrokerError) else "the sign-in could not be completed"
    return f"The authorization server did not give the broker tokens: {reason}. {TRY_AGAIN}"
