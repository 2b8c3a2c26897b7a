"""Real parts (browser, Secret Service, X server, Node 22 harness) are required in CI.

Outside CI a missing part skips the test with the reason; with ``CI=true`` it fails it, so that a
machine without the part can never produce a green run that tested nothing.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str, how: str) -> None:
    """Skip (locally) or fail (in CI) when a real part is missing."""
    if condition:
        return
    message = f"{what} is missing: {how}"
    if in_ci():
        pytest.fail(f"CI requires real parts. {message}", pytrace=False)
    pytest.skip(message)
