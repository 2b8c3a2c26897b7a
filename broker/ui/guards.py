"""Request guards of the control page: what a request to ``/ui/`` must look like before any view
runs. The page is for the user's own browser, so unlike the token API it serves browsers — but
only as its own origin, ``http://127.0.0.1:PORT``:

- ``Host`` must be exactly ``127.0.0.1:PORT`` (DNS rebinding: a page whose own hostname resolves
  to 127.0.0.1 sends that hostname; ``localhost`` is refused too, so there is one origin and one
  cookie jar);
- ``Forwarded``/``X-Forwarded-*``/``Via`` (a relay through a local proxy or fetch tool), CORS
  preflights and ``OPTIONS`` are refused; no response carries an ``Access-Control-*`` header;
- ``Sec-Fetch-Site``, when the browser sends it, must be ``same-origin`` or ``none`` (the user
  opened it): a page on another port of 127.0.0.1 is *same-site*, so ``SameSite=Strict`` alone
  would let it send the cookie along; this refuses it. The launch link is the one exception (it
  is opened from a local file, whose origin is opaque): the token in it is the proof;
- a request that changes anything (not GET/HEAD) must carry ``Origin: http://127.0.0.1:PORT``
  exactly, and the session's CSRF token in its form (checked by the app, :mod:`broker.ui.app`);
- frames are refused (``Sec-Fetch-Dest`` of a frame; ``frame-ancestors 'none'`` in the CSP).

Every answer carries :data:`SECURITY_HEADERS`: a strict CSP (no script at all, styles and
images from the page itself only, forms post only to it), no caching, and a referrer for the
page itself only (``same-origin``: with ``no-referrer`` browsers send ``Origin: null`` on the
page's own form posts, which the Origin rule would refuse).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.api.guards import RELAY_HEADERS

SAFE_METHODS = frozenset({"GET", "HEAD"})
LAUNCH_PATH = "/ui/launch"

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)

_PREFLIGHT = (
    "HTTP_ACCESS_CONTROL_REQUEST_METHOD",
    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS",
    "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK",
)
_FRAMES = frozenset({"iframe", "frame", "embed", "object", "fencedframe"})


class Refused(Exception):
    """A request the page does not serve: ``status`` and a reason safe to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def page_origin(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def check_page_request(environ: Mapping[str, Any], port: int) -> None:
    """Raise :class:`Refused` for the first rule ``environ`` breaks."""
    if environ.get("HTTP_HOST") != f"127.0.0.1:{port}":
        raise Refused(403, f"this page answers only at {page_origin(port)}")
    for name in RELAY_HEADERS:
        if name in environ:
            raise Refused(403, "relayed requests are not served")
    method = environ.get("REQUEST_METHOD")
    if method == "OPTIONS" or any(name in environ for name in _PREFLIGHT):
        raise Refused(403, "cross-origin requests are not served")
    if environ.get("HTTP_SEC_FETCH_DEST", "").lower() in _FRAMES:
        raise Refused(403, "this page cannot be shown in a frame")
    site = environ.get("HTTP_SEC_FETCH_SITE")
    launch = environ.get("PATH_INFO") == LAUNCH_PATH and method in SAFE_METHODS
    if site is not None and site not in ("same-origin", "none") and not launch:
        raise Refused(403, "requests from other sites (or other ports) are not served")
    if method not in SAFE_METHODS and environ.get("HTTP_ORIGIN") != page_origin(port):
        raise Refused(403, "changes are accepted only from the page itself (Origin)")
