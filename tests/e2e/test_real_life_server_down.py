"""The authorization server goes away for several refresh periods, then comes back (issue 10).

While it is away, the running broker says "can't reach the authorization server" (its API, the
CLI's ``status`` and the tray's words), never "sign in"; it retries with a jittered exponential
backoff under a ceiling; the refresh token stays in the keyring; and once the server is back the
broker refreshes by itself. An ``invalid_grant`` answer, by contrast, ends in "sign-in required"
at once.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from broker.api.endpoint import request_token, running_status
from broker.desktop.menu import View, describe, title
from broker.errors import InteractionRequired, ServerUnreachable
from broker.tokens.backoff import Backoff
from broker.tokens.service import UNREACHABLE
from broker.tokens.status import ServerStatus
from tests.e2e.conftest import BrokerCli
from tests.e2e.real_life import real_life_stack, running_broker, sign_in, stored
from tests.support.desktop import wait_for
from tests.support.secret_service import SecretServiceHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 6  # seconds: the refresher is due every ~5 s
OUTAGE = 4 * TTL  # several refresh periods
RETRY = re.compile(r"refresh for \S+ failed \((.*)\); retrying in ([0-9.]+)s")


def tray_words(rows: list[dict[str, object]]) -> tuple[str, list[str]]:
    """What the tray would show for the running broker's status rows (title, server lines)."""
    servers = tuple(
        ServerStatus(
            url=str(r["url"]),
            state=str(r["state"]),
            reason=r.get("reason"),  # type: ignore[arg-type]
            expires_at=r.get("expires_at"),  # type: ignore[arg-type]
        )
        for r in rows
    )
    view = View(servers=servers, now=time.time())
    return title(view), [describe(s, view) for s in servers]


def test_server_away_then_back_keeps_the_sign_in_and_recovers_by_itself(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    with real_life_stack(TTL, rotation=True, grace=0) as stack:
        sign_in(broker_cli, stack.mcp_url)
        with running_broker(broker_cli, tmp_path / "broker.log") as (broker, paths):
            request_token(stack.mcp_url, paths=paths)
            refresh_token = stored(secret_service, stack.key())
            assert refresh_token is not None and refresh_token.refresh_token

            stack.idp.stop()
            away_at = time.time()
            wait_for(
                "the broker to notice the server is away",
                lambda: "retrying in" in broker.log() or None,
                3 * TTL,
            )
            # Past the token's expiry: a request now has nothing valid to serve.
            time.sleep(max(0.0, away_at + TTL + 1 - time.time()))
            with pytest.raises(ServerUnreachable) as unreachable:
                request_token(stack.mcp_url, paths=paths, min_valid=1)
            api_rows = running_status(paths)
            cli_rows = json.loads(broker_cli.ok("status", "--json"))["servers"]
            cli_text = broker_cli.ok("status")
            tray_title, tray_lines = tray_words(api_rows)
            kept = stored(secret_service, stack.key())
            time.sleep(max(0.0, away_at + OUTAGE - time.time()))

            refreshes_before = stack.idp.counter.refreshes
            stack.idp.start()
            back = wait_for(
                "the broker to refresh by itself once the server is back",
                lambda: next((r for r in running_status(paths) if r["state"] == "valid"), None),
                60,
            )
            refreshes_after = stack.idp.counter.refreshes
            served = request_token(stack.mcp_url, paths=paths, min_valid=1)
            log = broker.log()

    # Away: "can't reach", everywhere, and no word of signing in.
    assert "sign" not in str(unreachable.value).lower()
    for rows in (api_rows, cli_rows):
        (row,) = rows
        assert row["state"] == "retrying", row
        assert str(row["reason"]).startswith(UNREACHABLE), row
    assert UNREACHABLE in cli_text and "sign" not in cli_text.lower()
    assert UNREACHABLE in tray_title and all(UNREACHABLE in line for line in tray_lines)
    assert not any("sign" in line.lower() for line in [tray_title, *tray_lines])
    # The refresh token stayed in the keyring, untouched.
    assert kept is not None and kept.refresh_token == refresh_token.refresh_token
    # Retries backed off: each delay within the equal-jitter band of its step, under the cap,
    # growing, and not in lockstep (jitter).
    delays = [float(m.group(2)) for m in RETRY.finditer(log)]
    assert len(delays) >= 3, delays
    backoff = Backoff()
    for failures, delay in enumerate(delays, start=1):
        step = min(backoff.cap, backoff.base * backoff.factor ** (failures - 1))
        assert step / 2 - 0.1 <= delay <= step + 0.1, (failures, delay, delays)
    assert delays[-1] > delays[0]
    fractions = {round(d / min(backoff.cap, backoff.base * 2**i), 2) for i, d in enumerate(delays)}
    assert len(fractions) > 1, delays  # jitter: not every delay is the same part of its step
    # Back: refreshed without anyone asking, a valid token served, no refresh token spent twice.
    assert refreshes_after > refreshes_before and back["reason"] is None
    assert served.expires_at > time.time()
    assert stack.idp.store.reused_refresh_tokens == 0


def test_invalid_grant_needs_sign_in_at_once(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    with real_life_stack(TTL, rotation=True) as stack:
        sign_in(broker_cli, stack.mcp_url)
        with running_broker(broker_cli, tmp_path / "broker.log") as (broker, paths):
            before = stored(secret_service, stack.key())
            assert before is not None
            record = stack.idp.store.known_refresh(str(before.refresh_token))
            assert record is not None
            refreshes = stack.idp.counter.refreshes
            stack.idp.store.revoke_origin(record.origin_jti)  # the sign-in is revoked

            # The refresher's next refresh is refused with invalid_grant.
            row = wait_for(
                "the broker to need a sign-in",
                lambda: next((r for r in running_status(paths) if r["state"] != "valid"), None),
                3 * TTL,
            )
            with pytest.raises(InteractionRequired) as refused:
                request_token(stack.mcp_url, paths=paths, min_valid=1)
            (cli_row,) = json.loads(broker_cli.ok("status", "--json"))["servers"]
            tray_title, _ = tray_words([row])
            attempts = stack.idp.counter.refreshes - refreshes
            log = broker.log()

    assert "sign-in required" in str(refused.value)
    assert row["state"] == cli_row["state"] == "sign_in_required"
    assert UNREACHABLE not in str(row["reason"])
    assert "sign-in needed" in tray_title
    assert attempts == 1 and "retrying in" not in log  # at once: no retries of a dead grant
    assert stored(secret_service, stack.key()) is None  # the dead grant is not kept
