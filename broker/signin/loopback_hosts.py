"""The exact ``Host`` values a listener on 127.0.0.1 answers to (DNS rebinding defence).

A web page can make the browser send requests to 127.0.0.1 under its own hostname (DNS
rebinding); such a request carries that hostname in ``Host``. The token API and the sign-in
callback listener answer only ``127.0.0.1:PORT`` and ``localhost:PORT`` — no trailing dot, no
other loopback name — so a page learns nothing from them, not even whether a sign-in is waiting.
"""

from __future__ import annotations


def allowed_hosts(port: int) -> frozenset[str]:
    """The exact ``Host`` values a loopback listener on ``port`` answers to."""
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
