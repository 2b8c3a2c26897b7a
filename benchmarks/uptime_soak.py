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
- refresh grants per server versus the refreshes the schedule called for (target: equal +-1),
  and rotated-out refresh tokens presented again (target 0). A "lifetime" here is one access
  token's, as the authorization server issued it: from its issue to its ``exp``. The broker
  refreshes once only 15 % of a token's lifetime is left, so the schedule calls for one refresh
  per token issued, due at ``issued + 85 % of (exp - issued)``; the refreshes called for are
  the tokens whose due point fell inside the run. Each of those refreshes is checked against
  the token it replaced: *early* if it came before that token's due point (a wasted refresh),
  *late* if it came after that token's ``exp`` (a lapse: the broker held no valid token).
  Targets: 0 and 0.
  ``--round-expiry-up`` makes a 5 s token live 5 to 6 s (``exp`` is rounded up to the whole
  second), so a refresh that is late by a little under load gets a token that lives longer;
  elapsed / 5 s is printed beside it, but it is not what the broker is asked to do;
- the broker's resident memory, open file descriptors and threads, sampled every 2 s: the
  median over 60-75 s after the clients start ("after the first minute") versus the median over
  the last 15 s (target: within 5 %, i.e. no leak), with the curve's start and end figures.

    .venv/bin/python benchmarks/uptime_soak.py [--minutes 20]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as common
import httpx2

from broker.api.endpoint import Endpoint, read_endpoint
from broker.tokens.freshness import RefreshPolicy
from tests.e2e.real_life import Stack, real_life_stack

TTL = 5
SERVERS = 3
CLIENTS_PER_SERVER = 2
PAUSE = (0.05, 3.0)  # seconds between one client's requests, uniformly at random
SAMPLE_EVERY = 2.0
BASELINE = (60.0, 75.0)  # "after the first minute", seconds after the clients start
END_WINDOW = 15.0
TOLERANCE = 0.05
#: When the broker refreshes: with this fraction of a token's lifetime left (its default policy).
LEAD = RefreshPolicy().lead_fraction


# -- what the authorization servers issued -------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    at: float  # wall clock when the token response left the authorization server
    exp: float  # the access token's exp
    grant: str

    @property
    def due(self) -> float:
        """When the broker's schedule calls for this token's refresh."""
        return self.at + (1 - LEAD) * (self.exp - self.at)


class IssueLog:
    """WSGI middleware: every access token the token endpoint hands out, with its issue time."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.issued: list[Issued] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/oauth2/token" or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        grant = urllib.parse.parse_qs(body.decode("latin-1")).get("grant_type", ["?"])[0]
        answer = b"".join(self.app(environ, start_response))
        try:
            exp = common.claims(json.loads(answer)["access_token"])["exp"]
        except (ValueError, KeyError, TypeError):
            return [answer]  # an error answer: no token issued
        with self._lock:
            self.issued.append(Issued(time.time(), float(exp), grant))
        return [answer]


@dataclass(frozen=True)
class Schedule:
    refreshes: int  # refresh grants answered within the run
    called_for: int  # tokens whose refresh came due within the run
    early: int  # refreshes before the replaced token's due point
    late: list[str]  # refreshes after the replaced token's exp: how late, and when in the run
    mean_life: float  # mean lifetime (exp - issue) of the tokens issued in the run
    mean_interval: float  # mean time between two refreshes


def schedule(issued: list[Issued], start: float, end: float) -> Schedule:
    chain = sorted(issued, key=lambda i: i.at)
    inside = [i for i in chain if start <= i.at <= end]
    refreshes = [i for i in inside if i.grant == "refresh_token"]
    early = 0
    late: list[str] = []
    for before, after in itertools.pairwise(chain):
        # Only the refreshes the run called for: a token due before the clients started (e.g.
        # the sign-in's, while the broker was still starting) is not judged.
        if after.grant != "refresh_token" or not start <= before.due <= end:
            continue
        early += after.at < before.due
        if after.at > before.exp:
            late.append(f"{after.at - before.exp:.2f} s past exp at {after.at - start:.0f} s")
    times = [i.at for i in refreshes]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return Schedule(
        refreshes=len(refreshes),
        called_for=sum(start <= i.due <= end for i in chain),
        early=early,
        late=late,
        mean_life=statistics.mean(i.exp - i.at for i in inside) if inside else 0.0,
        mean_interval=statistics.mean(gaps) if gaps else 0.0,
    )


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
    schedules: dict[str, Schedule]
    elapsed: float
    samples: list[Sample]
    baseline: list[Sample]
    end: list[Sample]
    reused: int
    exit_code: int = 0


def run_clients(
    home: Path, urls: list[str], seconds: float, refreshes: Callable[[], dict[str, int]], pid: int
) -> tuple[dict[str, Tally], dict[str, int], tuple[float, float], Sampler]:
    argv = [sys.executable, __file__, "--clients-of", str(home), "--seconds", str(seconds)]
    argv += [arg for url in urls for arg in ("--url", url)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "start":
            raise RuntimeError("the client process did not start")
        before, began = refreshes(), time.time()
        sampler = Sampler(pid)
        sampler.start()
        doc = json.loads(child.stdout.readline())
        after, ended = refreshes(), time.time()
        sampler.stopping.set()
        sampler.join()
    tallies = {url: Tally(**doc[url]) for url in urls}
    return tallies, {url: after[url] - before[url] for url in urls}, (began, ended), sampler


def soak(seconds: float, keep_log: Path | None = None) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-uptime-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        env = stack.enter_context(common.private_keyring(workdir))
        stacks: list[Stack] = [
            stack.enter_context(real_life_stack(TTL, rotation=i == SERVERS - 1))
            for i in range(SERVERS)
        ]
        urls = [s.mcp_url for s in stacks]
        logs = {}
        for s in stacks:
            logs[s.mcp_url] = IssueLog(s.idp.app.wsgi_app)
            s.idp.app.wsgi_app = logs[s.mcp_url]  # type: ignore[method-assign]
        home = workdir / "home"
        for url in urls:
            paths = common.sign_in(home, url)
        proc = common.start_broker(home, env, workdir / "broker.log")
        code = 0
        try:
            common.wait_for_endpoint(paths, proc)
            tallies, refreshes, (began, ended), sampler = run_clients(
                home,
                urls,
                seconds,
                lambda: {s.mcp_url: s.idp.counter.refreshes for s in stacks},
                proc.pid,
            )
        finally:
            code = common.stop_broker(proc)
            if keep_log is not None:
                shutil.copyfile(workdir / "broker.log", keep_log)
        elapsed = ended - began
        return Outcome(
            tallies,
            refreshes,
            {url: schedule(log.issued, began, ended) for url, log in logs.items()},
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
    plans = [out.schedules[url] for url in out.tallies]
    refreshes_ok = all(
        abs(n - p.called_for) <= 1 and p.refreshes == n and p.early == 0 and not p.late
        for n, p in zip(per_server, plans, strict=True)
    )
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
    for url, plan in zip(out.tallies, plans, strict=True):
        how_late = f" ({'; '.join(plan.late)})" if plan.late else ""
        print(
            f"  {url}: {plan.refreshes} refreshes, {plan.called_for} called for by the tokens "
            f"issued (one per token, due with {LEAD:.0%} of its lifetime left); early "
            f"{plan.early}, late {len(plan.late)}{how_late}; tokens lived {plan.mean_life:.2f} s "
            f"on average, one refresh every {plan.mean_interval:.2f} s"
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
        f"{'/'.join(map(str, per_server))}, called for "
        f"{'/'.join(str(p.called_for) for p in plans)} (one per token issued; equal +-1, none "
        f"early or late: {common.verdict(refreshes_ok)}; elapsed / {TTL} s = {lifetimes:.1f}); "
        f"{out.reused} rotated-out refresh tokens "
        f"reused; after 1 min -> end: {', '.join(figures)} "
        f"(within 5 %: {common.verdict(steady)})"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument(
        "--keep-log",
        type=Path,
        metavar="FILE",
        help="copy the broker's log here at the end (BENCH_BROKER_FLAGS=-vv: what it did, when)",
    )
    parser.add_argument("--clients-of", help=argparse.SUPPRESS)
    parser.add_argument("--url", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_of:
        return clients_main(args.clients_of, args.url, args.seconds)
    seconds = args.minutes * 60
    if seconds < BASELINE[1] + END_WINDOW:
        parser.error(f"--minutes must cover at least {(BASELINE[1] + END_WINDOW) / 60:.1f}")
    report(soak(seconds, args.keep_log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
