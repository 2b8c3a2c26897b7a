"""Signing in without a browser on this machine: the parts around the protocol core.

- :class:`PasteReader` (``mcp-broker login --no-browser``): the user opened the printed link on
  any machine and pastes the address their browser ended on (or just ``code`` and ``state``).
  Each pasted line is parsed (:mod:`broker.oauth.paste`); a paste for another sign-in is refused
  with a message and the user may paste again; one for this sign-in goes to the loopback
  listener's own judge (:meth:`broker.signin.callback.CallbackListener.deliver`), so ``state``,
  ``iss`` and the PKCE binding are checked exactly as for a delivered callback. Whichever comes
  first completes the sign-in: the paste or the callback (same machine after all). Standard
  input ending without a paste for this sign-in cancels it.
- :func:`device_sign_in`: the device authorization grant (RFC 8628) with the polling policy of
  :class:`broker.oauth.device.DevicePolling`, sleeping between polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import IO

from broker.errors import BrokerError, CallbackRejected, ServerUnreachable
from broker.oauth.authorize import AuthorizationRequest
from broker.oauth.callback_params import is_our_callback
from broker.oauth.device import (
    DeviceAuthorization,
    DevicePolling,
    build_device_authorization_request,
    build_device_token_request,
    handle_device_authorization_response,
)
from broker.oauth.discovery import Discovered
from broker.oauth.paste import OTHER_SIGN_IN, parse_pasted_callback
from broker.oauth.registration import ClientCredentials
from broker.oauth.token_request import handle_token_response
from broker.signin.callback import CallbackListener
from broker.signin.discovery import Sender
from broker.tokens.tokenset import TokenKey, TokenSet

logger = logging.getLogger(__name__)


class PasteReader:
    """Reads pasted sign-in addresses from ``stream`` on a daemon thread (see the module)."""

    def __init__(
        self,
        stream: IO[str],
        request: AuthorizationRequest,
        listener: CallbackListener[str],
        tell: Callable[[str], object],
    ) -> None:
        self._stream = stream
        self._request = request
        self._listener = listener
        self._tell = tell
        self._thread = threading.Thread(target=self._run, name="mcp-broker-paste", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the reader has stopped (its stream ended, or the sign-in was decided and a
        line came in)."""
        self._thread.join(timeout)

    def _run(self) -> None:
        for line in self._stream:
            if self._listener.done:
                return
            if not line.strip():
                continue
            try:
                params = parse_pasted_callback(line)
                if not is_our_callback(params, self._request):
                    raise CallbackRejected(OTHER_SIGN_IN)
            except CallbackRejected as exc:
                self._tell(f"{exc}. Paste again:")
                continue
            try:
                self._listener.deliver(params)
            except BrokerError as exc:  # the sign-in fails with it: wait() raises it
                logger.info("the pasted sign-in response was refused: %s", exc)
            return
        self._listener.cancel("standard input ended before the sign-in address was pasted")


def device_sign_in(
    send: Sender,
    found: Discovered,
    client: ClientCredentials,
    scope: str | None,
    resource: str | None,
    show: Callable[[DeviceAuthorization], object],
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], object] = time.sleep,
) -> TokenSet:
    """Sign in with the device authorization grant; ``show`` tells the user where to go and
    which code to enter. Tokens are keyed by the discovered resource, as a browser sign-in's."""
    server = found.auth_server
    answer = send(build_device_authorization_request(server, client, scope, resource))
    authorization = handle_device_authorization_response(answer)
    show(authorization)
    polling = DevicePolling(authorization, clock())
    key = TokenKey(found.issuer, client.client_id, found.resource)
    while True:
        sleep(polling.before_poll(clock()))
        sent = clock()
        request = build_device_token_request(server, client, authorization.device_code, resource)
        try:
            response = send(request)
        except ServerUnreachable:
            polling.unreachable(sent)
            continue
        if polling.judge(response, sent):
            logger.info("signed in to %s at %s with a device code", found.resource, found.issuer)
            return handle_token_response(
                response, key, scope, now=sent, exp_claim=server.profile.jwt_access_tokens
            )
