"""Benchmark: broker start-up to first token served, and resident memory when idle.

A broker home is signed in to the demo MCP server first (tokens in a private Secret Service).
Then, ``--rounds`` times: start ``mcp-broker run --headless`` (``python -m broker.cli``, what the
console script runs) and time until ``POST /v1/token`` answers 200 with a token (polling every
10 ms from the moment the process is spawned). After the last round's first token, the broker
is left idle until its RSS (``/proc/PID/status`` VmRSS) stops moving, and that is reported.
Targets: start-up to first token < 1.5 s (median), idle RSS < 80 MB. For scale, the same run
times a bare ``python -c pass``.

    .venv/bin/python benchmarks/startup.py [--rounds 5] [--settle 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as common
import httpx2

START_TARGET = 1.5
RSS_TARGET = 80.0


def first_token_seconds(
    home: Path, url: str, env: dict[str, str], log: Path
) -> tuple[float, subprocess.Popen[bytes]]:
    """(seconds from spawn to the first token, the broker); the broker is left running."""
    paths = common.broker_paths({"MCP_BROKER_HOME": str(home)})
    paths.endpoint_file.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = common.start_broker(home, env, log)
    endpoint = common.wait_for_endpoint(paths, proc)
    with httpx2.Client(trust_env=False, timeout=10) as http:
        while True:
            response = common.ask_token(http, endpoint, url)
            if response.status_code == 200 and response.json().get("access_token"):
                return time.perf_counter() - started, proc
            if proc.poll() is not None:
                raise RuntimeError(f"the broker exited; see {log}")
            time.sleep(0.01)


def settled_rss(pid: int, settle: float) -> tuple[float, float]:
    """(RSS once two readings a second apart agree within 0.5 MB, at least 3 s after the first
    token, at most ``settle`` s; seconds waited)."""
    began = time.monotonic()
    time.sleep(2.0)
    previous = common.rss_mb(pid)
    while time.monotonic() - began < settle:
        time.sleep(1.0)
        current = common.rss_mb(pid)
        if abs(current - previous) < 0.5:
            return current, time.monotonic() - began
        previous = current
    return previous, time.monotonic() - began


def bare_python_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=10.0, help="longest wait for idle RSS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        workdir = Path(tmp)
        with (
            common.private_keyring(workdir) as env,
            common.demo_stack(access_token_ttl=3600, rotation=False) as stack,
        ):
            home = workdir / "home"
            common.sign_in(home, stack.mcp_url)
            times: list[float] = []
            rss = waited = 0.0
            for i in range(args.rounds):
                log = workdir / "broker.log"
                seconds, proc = first_token_seconds(home, stack.mcp_url, env, log)
                try:
                    times.append(seconds)
                    if i == args.rounds - 1:
                        rss, waited = settled_rss(proc.pid, args.settle)
                finally:
                    code = common.stop_broker(proc)
                print(f"  round {i + 1}: first token after {seconds:.3f} s (broker exit {code})")
            bare = statistics.median(bare_python_seconds() for _ in range(3))
    median = statistics.median(times)
    print(f"  python -c pass: {bare:.3f} s; idle RSS read after {waited:.0f} s")
    print(
        f"startup: first token {median:.2f} s median, {max(times):.2f} s max of {len(times)} "
        f"(target < {START_TARGET}: {common.verdict(median < START_TARGET)}); "
        f"idle RSS {rss:.1f} MB (target < {RSS_TARGET:.0f}: {common.verdict(rss < RSS_TARGET)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
