"""Benchmark: what authentication costs the demo MCP server, ``tools/call`` with and without it.

Two demo MCP servers run at the same time, each in its own process (``mcp-demo-server serve``):
one validating Cognito-shaped access tokens from the local authorization server (signature via
its JWKS, iss, token_use, client_id, scope, exp on every request) and one started with
``--no-auth``. For each, one MCP session is initialized (``initialize`` +
``notifications/initialized``, through the token for the protected one, which the broker library
got by signing in), then ``wrk`` (Debian package ``wrk``) sends raw JSON-RPC ``tools/call`` of
``echo`` on that session over ``--connections`` persistent connections, each request with its
own id. One server is loaded at a time, in short rounds in ABBA order (auth, no-auth, no-auth,
auth, ...), so a drift in the shared machine's load falls on both alike; loading both at once
made the figure depend on how the scheduler split two cores between two busy servers (0.84 to
1.17 over four runs). Reported: requests per second over all rounds (target: authenticated >=
0.9 x no-auth), the spread of the per-pair ratios, median p50/p99 latency of the rounds, and each
server process's CPU time per request (independent of the machine's load).

    .venv/bin/python benchmarks/auth_cost.py [--rounds 4] [--duration 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import _common as common
import httpx2
from _common import Result, parse_wrk

from broker.cli.demo import CLIENT_ID
from broker.cli.demo_smoke import follow_to_callback
from broker.config import ServerConfig
from broker.root import build
from broker.store.memory import MemoryTokenStore
from demo_server import idp
from demo_server.idp.settings import IdpSettings, ResourceServerConfig
from tests.support.procs import ServerProcess, demo_server_cmd, fixed_port

TARGET = 0.9
ACCEPT = "application/json, text/event-stream"
CALL = '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'  # noqa: E501

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Host"] = {host}
wrk.headers["Mcp-Session-Id"] = {session}
wrk.headers["MCP-Protocol-Version"] = {version}
{auth}
local id = 0
request = function()
  id = id + 1
  return wrk.format(nil, nil, nil, string.format({call}, id))
end
"""


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    pid: int
    headers: dict[str, str]  # what every request of the session carries


# -- the servers, a token, the sessions ----------------------------------------------------------


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[str, ServerProcess, ServerProcess]]:
    """(issuer, protected server, no-auth server); the authorization server runs here."""
    auth_port = fixed_port()  # the authorization server must know this URL before it binds
    auth_url = f"http://127.0.0.1:{auth_port}/mcp"
    settings = IdpSettings(
        port=0, auto_login="demo", resource_servers=(ResourceServerConfig(auth_url),)
    )
    with common.quiet_stderr(workdir / "servers.log"), idp.start(settings) as running:
        protected = demo_server_cmd("serve", "--port", str(auth_port), "--issuer", running.issuer)
        open_ = demo_server_cmd("serve", "--port", "0", "--no-auth")
        prm = f"http://127.0.0.1:{auth_port}/.well-known/oauth-protected-resource/mcp"
        with (
            ServerProcess(protected, workdir / "protected.log", ready_url=prm) as a,
            ServerProcess(open_, workdir / "open.log") as b,
        ):
            yield running.issuer, a, b


def access_token(workdir: Path, url: str) -> str:
    """Sign in with the broker library (tokens in memory) and take its access token."""
    paths = common.broker_paths({"MCP_BROKER_HOME": str(workdir / "home")})
    broker = build(
        paths, paths.config_file, store=MemoryTokenStore(), opener=follow_to_callback
    ).broker
    try:
        broker.add(ServerConfig(url, client_id=CLIENT_ID, provider="cognito"))
        broker.login(url)
        token: str = broker.token(url).access_token
        return token
    finally:
        broker.close()


def jsonrpc_result(response: httpx2.Response) -> dict[str, object]:
    """The JSON-RPC message of a JSON or SSE answer."""
    response.raise_for_status()
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(ln[5:] for ln in text.splitlines() if ln.startswith("data:"))
    doc: dict[str, object] = json.loads(text)
    return doc


def open_session(name: str, url: str, pid: int, token: str | None) -> Target:
    """``initialize`` + ``notifications/initialized``, then one checked ``echo`` call."""
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "auth-cost-bench", "version": "1"},
        },
    }
    with httpx2.Client(headers=headers, trust_env=False, timeout=30) as http:
        answer = http.post(url, json=init)
        result = jsonrpc_result(answer)["result"]
        assert isinstance(result, dict)
        headers["Mcp-Session-Id"] = answer.headers["mcp-session-id"]
        headers["MCP-Protocol-Version"] = str(result["protocolVersion"])
        http.headers.update(headers)
        http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        echo = jsonrpc_result(http.post(url, content=CALL % 1))
    if "hello" not in json.dumps(echo.get("result")):
        raise RuntimeError(f"{name}: echo did not answer: {echo}")
    return Target(name, url, pid, headers)


# -- the load -----------------------------------------------------------------------------------


def start_wrk(target: Target, args: argparse.Namespace, workdir: Path) -> subprocess.Popen[str]:
    auth = target.headers.get("Authorization")
    script = workdir / f"{target.name}.lua"
    script.write_text(
        WRK_SCRIPT.format(
            host=json.dumps(target.url.split("/")[2]),  # JSON strings are Lua strings
            session=json.dumps(target.headers["Mcp-Session-Id"]),
            version=json.dumps(target.headers["MCP-Protocol-Version"]),
            auth=f'wrk.headers["Authorization"] = {json.dumps(auth)}' if auth else "",
            call=json.dumps(CALL),
        )
    )
    script.chmod(0o600)  # it holds the access token
    argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    return subprocess.Popen(
        [*argv, "-s", str(script), target.url], stdout=subprocess.PIPE, text=True
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(target: Target, args: argparse.Namespace, workdir: Path) -> Result:
    """One ``wrk`` run against ``target`` alone, with the server's CPU time over it."""
    cpu = cpu_seconds(target.pid)
    result = parse_wrk(target.name, start_wrk(target, args, workdir).communicate()[0])
    result.cpu_seconds = cpu_seconds(target.pid) - cpu
    return result


def one_round(
    targets: list[Target], args: argparse.Namespace, workdir: Path, flip: bool
) -> list[Result]:
    """Both targets, one after the other (reversed when ``flip``); results in ``targets`` order."""
    order = list(reversed(targets)) if flip else targets
    done = {t.name: load(t, args, workdir) for t in order}
    return [done[t.name] for t in targets]


def combine(results: list[Result]) -> Result:
    return Result(
        results[0].name,
        sum(r.requests for r in results),
        sum(r.seconds for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
        sum(r.cpu_seconds for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs, in ABBA order")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--connections", type=int, default=16, help="per server")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("benchmarks/auth_cost.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp,
        servers(Path(tmp)) as (_, protected, open_),
    ):
        workdir = Path(tmp)
        auth_url, open_url = protected.url, open_.url  # as each server announced it
        token = access_token(workdir, auth_url)
        assert protected.proc is not None and open_.proc is not None
        targets = [
            open_session("auth", auth_url, protected.proc.pid, token),
            open_session("no-auth", open_url, open_.proc.pid, None),
        ]
        args_warm = argparse.Namespace(**{**vars(args), "duration": 2})
        one_round(targets, args_warm, workdir, False)  # warm-up (JWKS fetched, caches filled)
        runs = [one_round(targets, args, workdir, i % 2 == 1) for i in range(args.rounds)]
    report(runs, args)
    return 0


def report(runs: list[list[Result]], args: argparse.Namespace) -> None:
    print(
        f"auth cost benchmark: tools/call echo, {args.connections} connections per server, "
        f"one MCP session each, {os.cpu_count()} CPUs, one server loaded at a time (ABBA)"
    )
    for i, results in enumerate(runs, 1):
        for r in results:
            print(
                f"  round {i} {r.name:7}: {r.requests:6d} calls in {r.seconds:4.1f}s "
                f"{r.rps:6.0f}/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  "
                f"server CPU {r.cpu_us_per_request:5.0f} us/call  errors {r.errors}"
            )
    auth, bare = (combine([run[i] for run in runs]) for i in (0, 1))
    for r in (auth, bare):
        print(
            f"total {r.name:7}: {r.requests:6d} calls {r.rps:6.0f}/s  p50 {r.p50_ms:.2f} ms  "
            f"p99 {r.p99_ms:.2f} ms  server CPU {r.cpu_us_per_request:.0f} us/call  "
            f"errors {r.errors}"
        )
    ratio = auth.rps / bare.rps
    pairs = sorted(run[0].rps / run[1].rps for run in runs)
    cpu_ratio = auth.cpu_us_per_request / max(1e-9, bare.cpu_us_per_request)
    clean = auth.errors == 0 and bare.errors == 0
    print(
        f"auth cost: tools/call throughput with token validation {ratio:.2f} x no-auth "
        f"({auth.rps:.0f} vs {bare.rps:.0f} calls/s; target >= {TARGET}: "
        f"{common.verdict(ratio >= TARGET and clean)}; rounds {pairs[0]:.2f}-{pairs[-1]:.2f}), "
        f"server CPU per call {cpu_ratio:.2f} x, p99 {auth.p99_ms:.1f} vs {bare.p99_ms:.1f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
