from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.isolation",
    "tests.support.jwt_issuer",
    "tests.support.secret_service",
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests save screenshots and logs worth keeping (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
