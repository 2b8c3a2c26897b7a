"""Benchmark: refresh soak. Access tokens of 5 s, 30 concurrent clients, 2 minutes.

The local authorization server issues 5-second access tokens; a headless broker
(``mcp-broker run --headless``, tokens in a private Secret Service) is signed in to the demo MCP
server. 30 client threads (in a child process), each on its own persistent connection, ask the
broker's token API
(``POST /v1/token``) for a token, pause ``--pause`` seconds, and ask again, for ``--seconds``.

Reported:
- expired tokens handed out: a token whose ``exp`` claim is not after the moment the client
  received it (target 0). The least validity left on any token received is shown too, and the
  requests the API refused (``503 temporarily_unavailable`` while a refresh is slow).
- refresh grants the authorization server received (a WSGI counter around it, by
  ``grant_type``) versus token lifetimes elapsed (run time / 5 s); target: equal, +-1. The
  broker's policy (``broker/tokens/freshness.py``) refreshes once 15% of a lifetime is left and
  keeps serving the current token meanwhile, so there is one refresh per token turn. Two details
  make that exact for 5 s tokens: the ``cognito`` profile reads the access token's ``exp`` claim
  (the exact expiry; ``expires_in`` is whole seconds), and the local authorization server runs with
  ``--round-expiry-up``, so a token lives at least its ``expires_in`` (by default it rounds down
  as Cognito does, which makes every 5 s token a 4.x s token: one refresh every 4 s).

    .venv/bin/python benchmarks/refresh_soak.py [--seconds 120] [--clients 30] [--pause 0.1]
        [--cognito-rounding]

To see what the broker did: ``BENCH_BROKER_FLAGS=-vv BENCH_BROKER_LOG=/tmp/broker.log``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import _common as common
import httpx2

from broker.api.endpoint import Endpoint, read_endpoint

TTL = 5


@dataclass
class Tally:
    """What the clients saw; one lock, merged at the end of each client's run."""

    served: int = 0
    expired: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    least_left: float = float("inf")
    tokens: dict[str, float] = field(default_factory=dict)  # jti -> when first received
    lock: threading.Lock = field(default_factory=threading.Lock)

    def merge(self, other: Tally) -> None:
        with self.lock:
            self.served += other.served
            self.expired += other.expired
            for name, count in other.errors.items():
                self.errors[name] = self.errors.get(name, 0) + count
            self.least_left = min(self.least_left, other.least_left)
            for jti, seen in other.tokens.items():
                self.tokens[jti] = min(seen, self.tokens.get(jti, seen))


def client(
    endpoint: Endpoint, url: str, stop_at: float, args: argparse.Namespace, total: Tally
) -> None:
    mine = Tally()
    with httpx2.Client(trust_env=False, timeout=30) as http:
        while time.monotonic() < stop_at:
            ask(http, endpoint, url, args, mine)
            time.sleep(args.pause)  # after a refusal too: a client that retried at once
            # would only measure how fast the API can say 503
    total.merge(mine)


def ask(
    http: httpx2.Client, endpoint: Endpoint, url: str, args: argparse.Namespace, mine: Tally
) -> None:
    try:
        response = common.ask_token(http, endpoint, url, args.min_valid)
    except httpx2.HTTPError as exc:
        mine.errors[type(exc).__name__] = mine.errors.get(type(exc).__name__, 0) + 1
        return
    received = time.time()
    if response.status_code != 200:
        code = f"HTTP {response.status_code} {response.json().get('error')}"
        mine.errors[code] = mine.errors.get(code, 0) + 1
        return
    claims = common.claims(response.json()["access_token"])
    mine.served += 1
    mine.expired += claims["exp"] <= received
    mine.least_left = min(mine.least_left, claims["exp"] - received)
    mine.tokens.setdefault(claims["jti"], received)


def soak(endpoint: Endpoint, url: str, args: argparse.Namespace) -> Tally:
    total = Tally()
    stop_at = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=client, args=(endpoint, url, stop_at, args, total))
        for _ in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.seconds + 60)
    return total


def run_clients(
    home: Path, url: str, args: argparse.Namespace, refreshes: Callable[[], int]
) -> tuple[Tally, int, float]:
    """The clients run in a child process: 30 busy threads here would starve the authorization
    server (same GIL) and slow its refresh answers, which is not what is measured. Returns the
    tally, the refresh grants and the seconds between the child's "start" and its tally."""
    argv = [sys.executable, __file__, "--clients-of", str(home), "--url", url]
    argv += ["--seconds", str(args.seconds), "--clients", str(args.clients)]
    argv += ["--pause", str(args.pause)]
    if args.min_valid is not None:
        argv += ["--min-valid", str(args.min_valid)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "start":
            raise RuntimeError("the client process did not start")
        before, began = refreshes(), time.monotonic()
        doc = json.loads(child.stdout.readline())
        grants, elapsed = refreshes() - before, time.monotonic() - began
    tally = Tally(doc["served"], doc["expired"], doc["errors"], doc["least_left"], doc["tokens"])
    return tally, grants, elapsed


def clients_main(args: argparse.Namespace) -> int:
    paths = common.broker_paths({"MCP_BROKER_HOME": args.clients_of})
    endpoint = read_endpoint(paths.endpoint_file)
    print("start", flush=True)
    tally = soak(endpoint, args.url, args)
    doc = {k: getattr(tally, k) for k in ("served", "expired", "errors", "least_left", "tokens")}
    print(json.dumps(doc), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.1, help="each client's pause (s)")
    parser.add_argument(
        "--min-valid", type=float, help="min_valid_seconds each request sends (default: none)"
    )
    parser.add_argument(
        "--cognito-rounding",
        action="store_true",
        help="let the local authorization server round exp down as Cognito does (5 s tokens "
        "then live 4.x s; the refresh count follows)",
    )
    parser.add_argument("--clients-of", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_of:
        return clients_main(args)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        workdir = Path(tmp)
        with (
            common.private_keyring(workdir) as env,
            common.demo_stack(
                access_token_ttl=TTL, rotation=False, round_expiry_up=not args.cognito_rounding
            ) as stack,
        ):
            home = workdir / "home"
            paths = common.sign_in(home, stack.mcp_url)
            proc = common.start_broker(home, env, workdir / "broker.log")
            try:
                common.wait_for_endpoint(paths, proc)
                tally, refreshes, elapsed = run_clients(
                    home, stack.mcp_url, args, lambda: stack.counter.refreshes
                )
            finally:
                code = common.stop_broker(proc)
            if os.environ.get("BENCH_BROKER_LOG"):  # keep the whole log, e.g. with -vv flags
                shutil.copy(workdir / "broker.log", os.environ["BENCH_BROKER_LOG"])
    report(tally, refreshes, elapsed, args, code)
    return 0


def report(
    tally: Tally, refreshes: int, elapsed: float, args: argparse.Namespace, code: int
) -> None:
    lifetimes = elapsed / TTL
    # The token in hand when the soak began was issued before it: it is not a refresh's.
    refreshed_served = max(0, len(tally.tokens) - 1)
    rounding = "down, as Cognito" if args.cognito_rounding else "up (--round-expiry-up)"
    print(f"  the local authorization server rounds exp {rounding}")
    print(
        f"  {args.clients} clients x {elapsed:.0f} s, pause {args.pause} s: {tally.served} tokens "
        f"served ({tally.served / elapsed:.0f}/s), errors {tally.errors or 0}, broker exit {code}"
    )
    firsts = sorted(tally.tokens.values())
    gaps = [b - a for a, b in itertools.pairwise(firsts)]
    print(
        f"  least validity left on a token handed out: {tally.least_left:.2f} s; "
        f"distinct tokens seen {len(tally.tokens)}, first seen "
        f"{', '.join(f'{g:.2f}' for g in gaps)} s apart"
    )
    per_turn = abs(refreshes - refreshed_served) <= 1  # the last may land after the soak
    busy = sum(tally.errors.values())
    print(
        f"refresh soak: {tally.expired} expired of {tally.served} tokens handed out "
        f"(target 0: {common.verdict(tally.expired == 0)}; {busy} requests refused); "
        f"{refreshes} refreshes over {lifetimes:.1f} lifetimes of {TTL} s "
        f"(equal +-1: {common.verdict(abs(refreshes - lifetimes) <= 1)}), {refreshed_served} "
        f"new tokens served (one refresh per token turn +-1: {common.verdict(per_turn)})"
    )


if __name__ == "__main__":
    sys.exit(main())
