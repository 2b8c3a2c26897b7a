"""A sign-in completed by pasting (``mcp-broker login --no-browser``).

The user opens the authorization URL on any machine; the authorization server redirects their
browser to the loopback redirect URI, which fails there, and they paste what the address bar
shows back into the terminal. This module turns that text into the callback parameters the
loopback listener would have received; :func:`pasted_authorization_code` then judges them with
the very same checks as a delivered callback (:mod:`broker.oauth.callback_params`: ``state``,
RFC 9207 ``iss``, ``error``, ``code``; the code is redeemed with this sign-in's PKCE verifier).

Accepted forms, with surrounding whitespace, quotes and angle brackets ignored:

- the full address, ``http://127.0.0.1:PORT/callback?code=…&state=…&iss=…``;
- its query alone, ``?code=…&state=…`` or ``code=…&state=…``;
- ``code=… state=…`` (the pairs separated by whitespace, as when copied one by one).

As on the listener, the first of repeated parameters counts. Nothing pasted is ever logged or
repeated in an error message: it carries an authorization code.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from broker.errors import CallbackRejected
from broker.oauth.authorize import AuthorizationRequest
from broker.oauth.callback_params import authorization_code, is_our_callback

#: More than any real callback address; longer input is refused unread.
MAX_PASTE = 8192
_STRIP = " \t\r\n\"'<>`"
#: Parameters only an authorization *request* has: the user pasted the sign-in link itself.
_REQUEST_ONLY = ("response_type", "code_challenge", "redirect_uri")
OTHER_SIGN_IN = (
    "the pasted address belongs to another sign-in (its state does not match this one): "
    "paste the address from the sign-in link printed above"
)


def parse_pasted_callback(text: str) -> dict[str, str]:
    """The callback parameters in ``text``; :class:`CallbackRejected` when it holds none."""
    if len(text) > MAX_PASTE:
        raise CallbackRejected("the pasted text is too long to be a sign-in address")
    text = text.strip(_STRIP)
    parts = urlsplit(text)
    if parts.scheme and parts.netloc:
        query = parts.query
    else:
        query = text.lstrip("?")
        # "code=… state=…": whitespace between pairs stands for "&".
        query = "&".join(piece.strip(_STRIP) for piece in re.split(r"\s+", query) if piece)
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, value.strip(_STRIP))
    if any(name in params for name in _REQUEST_ONLY) and "code" not in params:
        raise CallbackRejected(
            "that is the sign-in link itself: open it in a browser, sign in, and paste the "
            "address the browser ends on"
        )
    if "state" not in params or not ({"code", "error"} & params.keys()):
        raise CallbackRejected(
            "the pasted text is not a sign-in address: paste the whole address from the "
            "browser's address bar (it has code= and state= in it)"
        )
    return params


def pasted_authorization_code(text: str, request: AuthorizationRequest) -> str:
    """The authorization code of a pasted callback, checked exactly like a delivered one."""
    params = parse_pasted_callback(text)
    if not is_our_callback(params, request):
        raise CallbackRejected(OTHER_SIGN_IN)
    return authorization_code(params, request)
