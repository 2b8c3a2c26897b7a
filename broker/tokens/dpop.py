"""DPoP-bound tokens (RFC 9449; MCP SEP-1932): when the broker asks for them, the key they are
bound to, and the proofs on its requests. The proofs themselves are :mod:`broker.oauth.dpop`.

**When.** Per server (``ServerConfig.dpop``): unset, when the authorization server lists ES256
in ``dpop_signing_alg_values_supported``; ``true`` (``mcp-broker add URL --dpop``) always, and a
token answer that is not ``token_type: DPoP`` is then refused; ``false`` (``--no-dpop``) never.
Cognito advertises no DPoP and issues no bound tokens: its servers get Bearer tokens as before.

**The key.** A new ES256 key pair for each sign-in to a server (the browser sign-in, the device
flow, a machine identity's first token), kept in the token set (``TokenSet.dpop_key``) and so
in the keyring entry of that server's tokens, never in a file, never logged (``repr`` hides it).
Per server rather than per issuer: the key lives and dies with the one sign-in it is bound to
(a refresh keeps it, a sign-out deletes it with the tokens, a new sign-in replaces both in one
write, so no process ever pairs tokens with another sign-in's key), and two servers of one
issuer do not share a key that would let them link the user's requests (the ``cnf.jkt``
thumbprint is the same everywhere a key is used). It never leaves the broker's processes: the
token API and ``mcp-broker token``/``headers`` refuse a bound token (:func:`refuse_bound`),
and only the broker's own bridge and ``call`` sign proofs with it.

**Token requests** (:class:`ProofSender`): a proof on each request to the token endpoint; a
``use_dpop_nonce`` answer is retried once with the nonce it sent (§8). **Requests to the MCP
server** (:class:`ResourceProofs`, used by the one 401/403 handler
:class:`broker.signin.httpauth.BrokerAuth`): ``Authorization: DPoP <token>`` and a fresh proof
with ``ath`` on every request; a 401 ``use_dpop_nonce`` is retried once with the nonce (§9).
Every answer's ``DPoP-Nonce`` replaces the one remembered for that origin (§8.2), in this
process (:class:`NonceMemory`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from broker.errors import AuthorizationError, DpopBound
from broker.tokens.tokenset import TokenSet

if TYPE_CHECKING:
    import httpx2
    from joserfc.jwk import ECKey

    from broker.config import ServerConfig
    from broker.oauth.as_metadata import AuthServer
    from broker.signin.discovery import Sender
    from broker.tokens.auth_servers import AuthServerCache

logger = logging.getLogger(__name__)

DPOP = "DPoP"


def is_bound(tokens: TokenSet) -> bool:
    """Whether the access token is DPoP-bound (``token_type: DPoP``)."""
    return tokens.token_type.lower() == DPOP.lower()


def refuse_bound(tokens: TokenSet) -> TokenSet:
    """``tokens`` for a client of the token API, ``token`` or ``headers``; a DPoP-bound token is
    refused (:class:`DpopBound`): without the key, which never leaves the broker, it is useless."""
    if is_bound(tokens):
        url = tokens.key.resource
        raise DpopBound(
            f"the tokens of {url} are DPoP-bound (RFC 9449): they work only with a proof "
            f"signed by the broker's key, which it never hands out. Connect the MCP client "
            f"through the broker's bridge instead: mcp-broker connect {url} "
            f"(mcp-broker configure CLIENT sets that up)"
        )
    return tokens


def dpop_servers(
    servers: Iterable[ServerConfig],
    auth_servers: AuthServerCache,
    tokens_bound: Callable[[ServerConfig], bool],
) -> frozenset[str]:
    """The URLs of ``servers`` whose tokens are DPoP-bound, or will be at the next sign-in, as
    far as the broker knows: set so (``dpop = true``); or, unless set not to, the pinned
    authorization server offers DPoP in its metadata as last seen (``auth_servers``); or the
    stored tokens are (``tokens_bound``, asked last: it may read the keyring). A client can use
    such a server only through the broker's bridge (``mcp-broker configure`` writes that)."""
    from broker.oauth.dpop import supports_dpop
    from broker.oauth.providers import profile_for

    found = set()
    for server in servers:
        if server.dpop is None and server.issuer is not None:
            profile = profile_for(server.issuer, server.profile_name).name
            seen = auth_servers.get(server.issuer, profile)
            offered = seen is not None and supports_dpop(seen)
        else:
            offered = bool(server.dpop)
        if offered or tokens_bound(server):
            found.add(server.url)
    return frozenset(found)


class NonceMemory:
    """The latest ``DPoP-Nonce`` each server origin sent (RFC 9449 §8.2, §9), in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nonces: dict[str, str] = {}

    def get(self, url: str) -> str | None:
        from broker.oauth.dpop import origin

        with self._lock:
            return self._nonces.get(origin(url))

    def observe(self, url: str, response: httpx2.Response) -> None:
        """Remember the nonce ``response`` (to a request to ``url``) carries, if any."""
        from broker.oauth.dpop import answered_nonce, origin

        nonce = answered_nonce(response)
        if nonce is not None:
            with self._lock:
                self._nonces[origin(url)] = nonce


class Dpop:
    """The process's DPoP decisions and nonce memory; made once by the composition root."""

    def __init__(
        self, nonces: NonceMemory | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.nonces = nonces or NonceMemory()
        self._clock = clock

    # -- token requests -----------------------------------------------------------------------

    def key_for_sign_in(self, server: ServerConfig, auth_server: AuthServer) -> ECKey | None:
        """A new key for a sign-in to ``server``, or None when it gets Bearer tokens."""
        from broker.oauth.dpop import new_key, supports_dpop

        if server.dpop is False or (server.dpop is None and not supports_dpop(auth_server)):
            return None
        logger.info("asking %s for DPoP-bound tokens for %s", auth_server.issuer, server.url)
        return new_key()

    def key_for_refresh(self, server: ServerConfig, tokens: TokenSet) -> ECKey | None:
        """The key of the sign-in ``tokens`` came from: its refresh token may be bound to it
        (RFC 9449 §5). Tokens without a key are refreshed as they are (Bearer), until the next
        sign-in; a broken key reads as none (the authorization server then refuses a bound
        refresh token, and the user signs in again)."""
        from broker.oauth.dpop import key_from_text

        if tokens.dpop_key is None or server.dpop is False:
            return None
        try:
            return key_from_text(tokens.dpop_key)
        except ValueError:
            logger.warning("the DPoP key kept for %s is unreadable", tokens.key.resource)
            return None

    def token_sender(
        self, send: Sender, auth_server: AuthServer, key: ECKey | None, server: ServerConfig
    ) -> Sender:
        """``send``, with a proof of ``key`` on every request to the token endpoint."""
        if key is None:
            return send
        return ProofSender(send, key, auth_server.token_endpoint, self, required=bool(server.dpop))

    @staticmethod
    def kept(tokens: TokenSet, key: ECKey | None) -> TokenSet:
        """``tokens`` with the key they are bound to (none for Bearer tokens)."""
        from broker.oauth.dpop import key_to_text

        text = key_to_text(key) if key is not None and is_bound(tokens) else None
        return dataclasses.replace(tokens, dpop_key=text)

    def proof(self, key: ECKey, method: str, url: str, access_token: str | None = None) -> str:
        """A fresh proof for one request, with the nonce last sent by ``url``'s origin."""
        from broker.oauth.dpop import build_proof

        nonce = self.nonces.get(url)
        return build_proof(key, method, url, self._clock(), nonce=nonce, access_token=access_token)

    # -- requests to the MCP server -----------------------------------------------------------

    def resource_proofs(self, tokens_for: Callable[[str], TokenSet | None]) -> ResourceProofs:
        """Proofs for the requests of a token source: ``tokens_for`` names the token set an
        access token it handed out belongs to."""
        return ResourceProofs(self, tokens_for)


class ProofSender:
    """A sender that puts a DPoP proof on each token endpoint request (RFC 9449 §5) and retries
    a ``use_dpop_nonce`` answer once with the nonce (§8). Other requests pass unchanged."""

    def __init__(
        self, send: Sender, key: ECKey, token_endpoint: str, dpop: Dpop, *, required: bool
    ) -> None:
        from broker.oauth.dpop import htu

        self._send = send
        self._key = key
        self._endpoint = htu(token_endpoint)
        self._dpop = dpop
        self._required = required

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        from broker.oauth.dpop import htu, is_nonce_challenge

        if htu(str(request.url)) != self._endpoint:
            return self._send(request)
        response = self._signed_send(request)
        if is_nonce_challenge(response):
            logger.info("the token endpoint asks for a DPoP nonce: sending the request again")
            response.close()
            response = self._signed_send(request)
        if response.status_code == 200:
            self._check_bound(response)
        return response

    def _signed_send(self, request: httpx2.Request) -> httpx2.Response:
        import httpx2

        url = str(request.url)
        signed = httpx2.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )
        signed.headers["DPoP"] = self._dpop.proof(self._key, request.method, url)
        response = self._send(signed)
        self._dpop.nonces.observe(url, response)
        return response

    def _check_bound(self, response: httpx2.Response) -> None:
        from broker.oauth.dpop import token_type_of

        token_type = token_type_of(response)
        if self._required and (token_type or "").lower() != DPOP.lower():
            response.close()
            raise AuthorizationError(
                "the authorization server answered with a Bearer token, but this server is set "
                "to use DPoP-bound tokens only (mcp-broker add URL --dpop); ask its operator, "
                "or take Bearer tokens from it: mcp-broker add URL --no-dpop"
            )


class ResourceProofs:
    """DPoP on the requests to one MCP server (RFC 9449 §7): the protocol
    :class:`broker.signin.httpauth.RequestProofs`."""

    def __init__(self, dpop: Dpop, tokens_for: Callable[[str], TokenSet | None]) -> None:
        self._dpop = dpop
        self._tokens_for = tokens_for
        self._key: tuple[str, ECKey] | None = None  # the last key read, not parsed per request

    def attach(self, request: httpx2.Request, token: str) -> bool:
        """For a bound ``token``: ``Authorization: DPoP`` and a new proof with ``ath``; False
        (nothing set) for a Bearer token."""
        tokens = self._tokens_for(token)
        key = self._key_of(tokens) if tokens is not None and is_bound(tokens) else None
        if key is None:
            request.headers.pop("DPoP", None)
            return False
        url = str(request.url)
        request.headers["Authorization"] = f"{DPOP} {token}"
        request.headers["DPoP"] = self._dpop.proof(key, request.method, url, token)
        return True

    def _key_of(self, tokens: TokenSet) -> ECKey | None:
        from broker.oauth.dpop import key_from_text

        text, cached = tokens.dpop_key, self._key
        if text is None:
            return None
        if cached is not None and cached[0] == text:
            return cached[1]
        try:
            key = key_from_text(text)
        except ValueError:
            logger.warning("the DPoP key kept for %s is unreadable", tokens.key.resource)
            return None
        self._key = (text, key)
        return key

    def nonce_challenged(self, request: httpx2.Request, response: httpx2.Response) -> bool:
        """Remember the nonce of the answer to ``request``; True when it is a 401
        ``use_dpop_nonce`` (§9)."""
        from broker.oauth.dpop import is_nonce_challenge

        self._dpop.nonces.observe(str(request.url), response)
        return response.status_code == 401 and is_nonce_challenge(response)
