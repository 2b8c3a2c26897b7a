"""The user's browser in the harness runs: ``$BROWSER URL`` approves the sign-in at once.

The broker opens the authorization URL with :mod:`webbrowser`, which runs ``$BROWSER URL`` and
waits for it. A browser would load the authorization endpoint, which (in the harness's
authorization servers) redirects straight back to the broker's loopback callback; this does the
same with two plain GETs and no redirect following of its own, so the broker's listener receives
exactly the ``Location`` the server chose. Nothing here makes a protocol decision.
"""

from __future__ import annotations

import sys

import httpx2

REDIRECTS = {301, 302, 303, 307, 308}


def approve(url: str) -> int:
    with httpx2.Client(follow_redirects=False, timeout=10, trust_env=False) as http:
        answer = http.get(url)
        location = answer.headers.get("location")
        if answer.status_code not in REDIRECTS or not location:
            print(
                f"approver: the authorization endpoint answered {answer.status_code}",
                file=sys.stderr,
            )
            return 1
        http.get(location)
    return 0


if __name__ == "__main__":
    sys.exit(approve(sys.argv[-1]))
