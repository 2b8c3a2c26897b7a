"""Benchmark: what one run of a per-use helper costs, next to a bare Python interpreter.

Claude Code runs ``mcp-broker headers URL`` for every connection, and scripts call
``mcp-broker token URL`` in loops. A broker home is signed in to the demo MCP server (tokens in
a private Secret Service); then ``--rounds`` times, alternating so that load on the machine hits
every command alike: a bare ``python -c pass`` (the same interpreter), ``mcp-broker headers URL``
and ``mcp-broker token URL`` (the console script), each timed from spawn to exit and checked to
print the token. First with no broker running (the helpers read the keyring), then with
``mcp-broker run --headless`` running (they ask its token API). Reported: the median wall time
of each, and each helper's ratio to the bare interpreter.

Every command runs once before the timed rounds, with bytecode caching on (as an installed
package has its ``.pyc`` files): the figures are for a helper as a client runs it.

Targets: <= 3x a bare interpreter with the broker running, <= 5x without.

    .venv/bin/python benchmarks/helpers.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as common

RUNNING_TARGET = 3.0
ALONE_TARGET = 5.0


def helper_argv() -> list[str]:
    """The console script a client runs, next to this interpreter (``-m`` when there is none)."""
    script = Path(sys.executable).with_name("mcp-broker")
    return [str(script)] if script.exists() else [sys.executable, "-m", "broker.cli"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[-2:]} exited {done.returncode}: {done.stderr.strip()}")
    return seconds, done.stdout


def check_token(command: str, out: str) -> None:
    token = (
        json.loads(out)["Authorization"].removeprefix("Bearer ") if command == "headers" else out
    )
    if common.claims(token.strip()).get("token_use") != "access":
        raise RuntimeError(f"{command} did not print an access token")


def medians(url: str, env: dict[str, str], rounds: int) -> dict[str, float]:
    """Median seconds of ``bare``, ``headers`` and ``token`` over ``rounds`` alternating runs."""
    times: dict[str, list[float]] = {"bare": [], "headers": [], "token": []}
    for command in ("headers", "token"):
        timed([*helper_argv(), command, url], env)  # writes the bytecode, as an install would
    for _ in range(rounds):
        times["bare"].append(timed([sys.executable, "-c", "pass"], env)[0])
        for command in ("headers", "token"):
            seconds, out = timed([*helper_argv(), command, url], env)
            check_token(command, out)
            times[command].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def describe(label: str, figures: dict[str, float]) -> str:
    bare = figures["bare"]
    return (
        f"  {label}: python -c pass {bare * 1000:.0f} ms; "
        f"headers {figures['headers'] * 1000:.0f} ms ({figures['headers'] / bare:.1f}x); "
        f"token {figures['token'] * 1000:.0f} ms ({figures['token'] / bare:.1f}x)"
    )


def ratio(figures: dict[str, float]) -> float:
    return max(figures["headers"], figures["token"]) / figures["bare"]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-helpers-") as tmp:
        workdir = Path(tmp)
        with (
            common.private_keyring(workdir) as env,
            common.demo_stack(access_token_ttl=3600, rotation=False) as stack,
        ):
            home = workdir / "home"
            common.sign_in(home, stack.mcp_url)
            env = {**env, "MCP_BROKER_HOME": str(home)}
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            alone = medians(stack.mcp_url, env, args.rounds)
            print(describe("no broker running", alone))
            proc = common.start_broker(home, env, workdir / "broker.log")
            try:
                common.wait_for_endpoint(common.broker_paths(env), proc)
                running = medians(stack.mcp_url, env, args.rounds)
            finally:
                common.stop_broker(proc)
            print(describe("broker running", running))
    met_running, met_alone = ratio(running) <= RUNNING_TARGET, ratio(alone) <= ALONE_TARGET
    print(
        f"helpers: headers {running['headers'] / running['bare']:.1f}x, "
        f"token {running['token'] / running['bare']:.1f}x a bare python with the broker running "
        f"(target <= {RUNNING_TARGET:.0f}x: {common.verdict(met_running)}); "
        f"headers {alone['headers'] / alone['bare']:.1f}x, "
        f"token {alone['token'] / alone['bare']:.1f}x without "
        f"(target <= {ALONE_TARGET:.0f}x: {common.verdict(met_alone)}); "
        f"median of {args.rounds}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
