"""Benchmark: uptime soak. Three servers, 5 s access tokens, clients at random intervals, 20 min.

A headless broker (``mcp-broker run --headless``, tokens in a private Secret Service) is signed
in to three demo MCP servers. Each is protected by its own instance of the local authorization
server (the refresh-token rotation setting is per server there, and a refresh count per server
is then simply that server's count): 5 s access tokens, ``--round-expiry-up``, and refresh-token
rotation (0 s grace) on the third. Clients in a child process (two per server; one keeps its
connection, one opens a new one for every request, as ``mcp-broker headers`` does) ask the
broker's token API, each pausing a random 0.05-3 s between requests, for ``--minutes``.

Reported:
- expired tokens handed out (``exp`` not after the moment the client received it; target 0),
  and requests refused;
- refresh grants per server versus token lifetimes elapsed (target: equal +-1), and rotated-out
  refresh tokens presented again (target 0);
- the broker's resident memory, open file descriptors and threads, sampled every 2 s: the
  median over 60-75 s after the clients start ("after the first minute") versus the median over
  the last 15 s (target: within 5 %, i.e. no leak), with the curve's start and end figures.

    .venv/bin/python benchmarks/uptime_soak.py [--minutes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import _common as common
import httpx2

from broker.api.endpoint import Endpoint, read_endpoint
from tests.e2e.real_life import Stack, real_life_stack

TTL = 5
SERVERS = 3
CLIENTS_PER_SERVER = 2
PAUSE = (0.05, 3.0)  # seconds between one client's requests, uniformly at random
SAMPLE_EVERY = 2.0
BASELINE = (60.0, 75.0)  # "after the first minute", seconds after the clients start
END_WINDOW = 15.0
TOLERANCE = 0.05


# -- the clients (child process) ---------------------------------------------------------------


@dataclass
class Tally:
    served: int = 0
    expired: int = 0
    least_left: float = float("inf")
    errors: dict[str, int] = field(default_factory=dict)

    def add_error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1


def client(endpoint: Endpoint, url: str, fresh: bool, stop_at: float, tally: Tally) -> None:
    rng = random.Random()
    http = httpx2.Client(trust_env=False, timeout=30)
    try:
        while time.monotonic() < stop_at:
            if fresh:  # a new connection per request, as the per-use helpers make
                http.close()
                http = httpx2.Client(trust_env=False, timeout=30)
            ask(http, endpoint, url, tally)
            time.sleep(rng.uniform(*PAUSE))
    finally:
        http.close()


def ask(http: httpx2.Client, endpoint: Endpoint, url: str, tally: Tally) -> None:
    try:
        response = common.ask_token(http, endpoint, url)
    except httpx2.HTTPError as exc:
        tally.add_error(type(exc).__name__)
        return
    received = time.time()
    if response.status_code != 200:
        tally.add_error(f"HTTP {response.status_code} {response.json().get('error')}")
        return
    exp = common.claims(response.json()["access_token"])["exp"]
    tally.served += 1
    tally.expired += exp <= received
    tally.least_left = min(tally.least_left, exp - received)


def clients_main(home: str, urls: list[str], seconds: float) -> int:
    endpoint = read_endpoint(common.broker_paths({"MCP_BROKER_HOME": home}).endpoint_file)
    tallies = {url: Tally() for url in urls}
    stop_at = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(endpoint, url, bool(i % 2), stop_at, tallies[url]))
        for url in urls
        for i in range(CLIENTS_PER_SERVER)
    ]
    print("start", flush=True)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    print(json.dumps({url: vars(t) for url, t in tallies.items()}), flush=True)
    return 0


# -- the broker's resources --------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float  # seconds after the clients started
    rss_mb: float
    fds: int
    threads: int


def sample(pid: int, at: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return Sample(
        at,
        int(fields["VmRSS"].split()[0]) / 1024,
        len(os.listdir(f"/proc/{pid}/fd")),
        int(fields["Threads"]),
    )


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(name="sampler", daemon=True)
        self.pid = pid
        self.samples: list[Sample] = []
        self.started = time.monotonic()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.samples.append(sample(self.pid, time.monotonic() - self.started))
            self.stopping.wait(SAMPLE_EVERY)

    def window(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]


def median_of(samples: list[Sample], metric: str) -> float:
    return float(statistics.median(getattr(s, metric) for s in samples))


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    tallies: dict[str, Tally]
    refreshes: dict[str, int]
    elapsed: float
    samples: list[Sample]
    baseline: list[Sample]
    end: list[Sample]
    reused: int
    exit_code: int = 0


def run_clients(
    home: Path, urls: list[str], seconds: float, refreshes: Callable[[], dict[str, int]], pid: int
) -> tuple[dict[str, Tally], dict[str, int], float, Sampler]:
    argv = [sys.executable, __file__, "--clients-of", str(home), "--seconds", str(seconds)]
    argv += [arg for url in urls for arg in ("--url", url)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "start":
            raise RuntimeError("the client process did not start")
        before, began = refreshes(), time.monotonic()
        sampler = Sampler(pid)
        sampler.start()
        doc = json.loads(child.stdout.readline())
        after, elapsed = refreshes(), time.monotonic() - began
        sampler.stopping.set()
        sampler.join()
    tallies = {url: Tally(**doc[url]) for url in urls}
    return tallies, {url: after[url] - before[url] for url in urls}, elapsed, sampler


def soak(seconds: float) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-uptime-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        env = stack.enter_context(common.private_keyring(workdir))
        stacks: list[Stack] = [
            stack.enter_context(real_life_stack(TTL, rotation=i == SERVERS - 1))
            for i in range(SERVERS)
        ]
        urls = [s.mcp_url for s in stacks]
        home = workdir / "home"
        for url in urls:
            paths = common.sign_in(home, url)
        proc = common.start_broker(home, env, workdir / "broker.log")
        code = 0
        try:
            common.wait_for_endpoint(paths, proc)
            tallies, refreshes, elapsed, sampler = run_clients(
                home,
                urls,
                seconds,
                lambda: {s.mcp_url: s.idp.counter.refreshes for s in stacks},
                proc.pid,
            )
        finally:
            code = common.stop_broker(proc)
        return Outcome(
            tallies,
            refreshes,
            elapsed,
            sampler.samples,
            sampler.window(*BASELINE),
            sampler.window(elapsed - END_WINDOW, elapsed),
            sum(s.idp.store.reused_refresh_tokens for s in stacks),
            code,
        )


def report(out: Outcome) -> bool:
    lifetimes = out.elapsed / TTL
    served = sum(t.served for t in out.tallies.values())
    expired = sum(t.expired for t in out.tallies.values())
    least = min(t.least_left for t in out.tallies.values())
    refused: dict[str, int] = {}
    for tally in out.tallies.values():
        for name, count in tally.errors.items():
            refused[name] = refused.get(name, 0) + count
    per_server = [out.refreshes[url] for url in out.tallies]
    refreshes_ok = all(abs(n - lifetimes) <= 1 for n in per_server)
    print(
        f"  {len(out.tallies)} servers x {CLIENTS_PER_SERVER} clients, {out.elapsed:.0f} s: "
        f"{served} tokens served, least validity left {least:.2f} s, refused {refused or 0}, "
        f"rotated-out refresh tokens reused {out.reused}, broker exit {out.exit_code}"
    )
    first, last = out.samples[0], out.samples[-1]
    print(
        f"  curve: at {first.at:.0f} s {first.rss_mb:.1f} MB, {first.fds} fds, "
        f"{first.threads} threads; at {last.at:.0f} s {last.rss_mb:.1f} MB, {last.fds} fds, "
        f"{last.threads} threads; RSS range "
        f"{min(s.rss_mb for s in out.samples):.1f}-{max(s.rss_mb for s in out.samples):.1f} MB"
    )
    figures = []
    steady = True
    for metric, unit in (("rss_mb", " MB"), ("fds", " fds"), ("threads", " threads")):
        base, end = median_of(out.baseline, metric), median_of(out.end, metric)
        steady &= abs(end - base) <= TOLERANCE * base
        figures.append(f"{base:.4g}->{end:.4g}{unit}")
    met = expired == 0 and refreshes_ok and out.reused == 0 and steady
    print(
        f"uptime soak: {out.elapsed / 60:.1f} min, {expired} expired of {served} tokens handed "
        f"out (target 0: {common.verdict(expired == 0)}); refreshes per server "
        f"{'/'.join(map(str, per_server))} over {lifetimes:.1f} lifetimes of {TTL} s "
        f"(equal +-1: {common.verdict(refreshes_ok)}); {out.reused} rotated-out refresh tokens "
        f"reused; after 1 min -> end: {', '.join(figures)} "
        f"(within 5 %: {common.verdict(steady)})"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--clients-of", help=argparse.SUPPRESS)
    parser.add_argument("--url", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_of:
        return clients_main(args.clients_of, args.url, args.seconds)
    seconds = args.minutes * 60
    if seconds < BASELINE[1] + END_WINDOW:
        parser.error(f"--minutes must cover at least {(BASELINE[1] + END_WINDOW) / 60:.1f}")
    report(soak(seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
