"""An unexpected exception is logged with its traceback and no credential in it, and the
client is told only what kind of failure it was."""

from __future__ import annotations

import logging

import pytest

from broker.bridge.failures import describe, scrub, unexpected

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZW1vIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "text",
    [
        "Illegal header value b'Bearer opaque-canary-1'",
        "{'authorization': 'DPoP opaque-canary-1'}",
        f"token {JWT} was refused",
        "refresh failed for opaque-canary-1",  # known to the caller only
    ],
)
def test_scrub_removes_credentials(text: str) -> None:
    scrubbed = scrub(text, ["opaque-canary-1"])

    assert "opaque-canary-1" not in scrubbed and JWT not in scrubbed
    assert "[redacted]" in scrubbed


def test_an_unexpected_error_is_logged_with_a_scrubbed_traceback_and_told_by_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("broker.bridge.test")
    try:
        raise RuntimeError(f"shattered with Bearer {JWT}\x1b]52;c;evil\x07")
    except RuntimeError as exc:
        with caplog.at_level(logging.ERROR, logger="broker.bridge"):
            told = unexpected(logger, "while testing", exc)
        line = describe(exc)

    assert "RuntimeError" in told and "shattered" not in told  # the type, never the text
    assert "Traceback" in caplog.text and "test_failures.py" in caplog.text
    assert JWT not in caplog.text and "\x1b" not in caplog.text
    assert line.startswith("RuntimeError: shattered with Bearer [redacted]") and "\x1b" not in line
