"""Benchmark: what the broker and the demo servers cost while nobody asks them anything.

The local authorization server (``mcp-demo-server idp --auto-login demo``) and the demo MCP
server (``mcp-demo-server serve``) run as their own processes; a broker home is signed in to the
MCP server (tokens in a private Secret Service). Then, per process, over ``--seconds`` (60):

1. ``mcp-broker run --headless``, nobody asking: CPU seconds per minute (``/proc/PID/stat``
   utime + stime), wakeups per second (``voluntary_ctxt_switches`` deltas summed over
   ``/proc/PID/task/*/status``) and RSS; over the same stretch, the two servers and a stdio
   bridge (``mcp-broker connect URL``) whose client has not said anything yet.
2. The same broker with one client asking ``POST /v1/token`` every second (one persistent
   connection): the broker's CPU per request.
3. ``mcp-broker run`` with its tray icon on a private desktop (Xvfb, trayer, dunst: see
   ``tests/support/desktop.py``), nobody asking. Skipped with ``--no-tray`` (and when Xvfb or
   PyGObject is missing, saying so).

Targets: the broker <= 0.3 CPU-s/min and <= 5 wakeups/s, headless and in the tray; the
authorization server, the demo MCP server and the bridge <= 0.3 CPU-s/min each.

    .venv/bin/python benchmarks/idle.py [--seconds 60] [--settle 5] [--no-tray]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import _common as common
import httpx2

from tests.support.desktop import TOOLS, Desktop, wait_for
from tests.support.procs import IDP_URL, MCP_URL, ServerProcess, demo_server_cmd, fixed_port

CPU_TARGET = 0.3  # CPU-s per minute
WAKEUP_TARGET = 5.0  # per second, the broker
TICK = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    cpu: float  # CPU seconds so far
    wakeups: int  # voluntary context switches so far, every live thread
    rss: float  # MB
    at: float  # monotonic seconds


def sample(pid: int) -> Sample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    wakeups = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                wakeups += int(line.split()[1])
    cpu = (int(fields[11]) + int(fields[12])) * TICK
    return Sample(cpu, wakeups, common.rss_mb(pid), time.monotonic())


@dataclass(frozen=True)
class Cost:
    name: str
    cpu_per_minute: float
    wakeups_per_second: float
    rss: float
    cpu: float

    def line(self) -> str:
        return (
            f"  {self.name}: {self.cpu_per_minute:.3f} CPU-s/min, "
            f"{self.wakeups_per_second:.1f} wakeups/s, RSS {self.rss:.0f} MB"
        )


def cost(name: str, before: Sample, after: Sample) -> Cost:
    seconds = after.at - before.at
    cpu = after.cpu - before.cpu
    return Cost(
        name, cpu / seconds * 60, (after.wakeups - before.wakeups) / seconds, after.rss, cpu
    )


def measure(pids: dict[str, int], seconds: float) -> dict[str, Cost]:
    """Each process's cost over the same ``seconds``."""
    before = {name: sample(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: cost(name, before[name], sample(pid)) for name, pid in pids.items()}


@dataclass
class Servers:
    idp: ServerProcess
    mcp: ServerProcess
    mcp_url: str

    @property
    def pids(self) -> dict[str, int]:
        assert self.idp.proc is not None and self.mcp.proc is not None
        return {"authorization server": self.idp.proc.pid, "demo MCP server": self.mcp.proc.pid}


@contextmanager
def demo_servers(workdir: Path) -> Iterator[Servers]:
    """The two demo servers as separate processes, each measurable on its own."""
    # Each must name the other before either exists: fixed ports (outside the ephemeral range).
    idp_port, mcp_port = fixed_port(), fixed_port()
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    issuer = f"http://127.0.0.1:{idp_port}/us-east-1_Demo00001"
    idp = ServerProcess(
        demo_server_cmd("idp", "--port", str(idp_port), "--auto-login", "demo",
                        "--resource-server", mcp_url),
        workdir / "idp.log",
        announce=IDP_URL,
        ready_url=f"{issuer}/.well-known/openid-configuration",
    )  # fmt: skip
    mcp = ServerProcess(
        demo_server_cmd("serve", "--port", str(mcp_port), "--issuer", issuer),
        workdir / "mcp.log",
        announce=MCP_URL,
        ready_url=f"http://127.0.0.1:{mcp_port}/.well-known/oauth-protected-resource/mcp",
    )
    with idp, mcp:
        yield Servers(idp, mcp, mcp_url)


def start_bridge(home: Path, env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    """``mcp-broker connect URL`` with a client that has not written anything yet."""
    return subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "connect", url],
        env={**env, "MCP_BROKER_HOME": str(home)},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_tray_broker(
    home: Path, env: dict[str, str], desktop: Desktop, log: Path
) -> subprocess.Popen[bytes]:
    """``mcp-broker run`` on ``desktop``, once its icon is docked in the tray."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", *common.BROKER_FLAGS, "run"],
            env={**desktop.environ(env), "MCP_BROKER_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for("the broker's tray icon", lambda: desktop.tray_icon("MCP OAuth Broker"), 60)
    return proc


def tray_missing() -> str | None:
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"{tool} (apt-get install {package})"
    if importlib.util.find_spec("gi") is None:
        return "PyGObject (pip install -e '.[linux-tray]')"
    return None


def asking_every_second(
    home: Path, proc: subprocess.Popen[bytes], url: str, seconds: float
) -> Cost:
    """The broker's cost while one client asks for a token every second; ``cpu`` per request."""
    endpoint = common.wait_for_endpoint(common.broker_paths({"MCP_BROKER_HOME": str(home)}), proc)
    requests = 0
    with httpx2.Client(trust_env=False, timeout=10) as http:
        before = sample(proc.pid)
        next_at = time.monotonic()
        while time.monotonic() - before.at < seconds:
            response = common.ask_token(http, endpoint, url)
            if response.status_code != 200:
                raise RuntimeError(f"the broker answered {response.status_code}: {response.text}")
            requests += 1
            next_at += 1.0
            time.sleep(max(0.0, next_at - time.monotonic()))
        measured = cost("broker, 1 request/s", before, sample(proc.pid))
    return Cost(
        measured.name,
        measured.cpu_per_minute,
        measured.wakeups_per_second,
        measured.rss,
        measured.cpu / requests,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="each measured stretch")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after start-up")
    parser.add_argument("--no-tray", action="store_true", help="skip the tray measurement")
    args = parser.parse_args()
    results: dict[str, Cost] = {}
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        env = stack.enter_context(common.private_keyring(workdir))
        servers = stack.enter_context(demo_servers(workdir))
        home = workdir / "home"
        common.sign_in(home, servers.mcp_url)
        log = workdir / "broker.log"

        proc = common.start_broker(home, env, log)
        bridge = start_bridge(home, env, servers.mcp_url)
        try:
            common.wait_for_endpoint(common.broker_paths({"MCP_BROKER_HOME": str(home)}), proc)
            time.sleep(args.settle)
            pids = {"broker (headless)": proc.pid, **servers.pids, "stdio bridge": bridge.pid}
            idle = measure(pids, args.seconds)
            results.update(idle)
            busy = asking_every_second(home, proc, servers.mcp_url, args.seconds)
        finally:
            common.stop_broker(proc)
            common.stop_broker(bridge)
        for item in idle.values():
            print(item.line())
        print(busy.line() + f"; {busy.cpu * 1000:.2f} ms CPU per request")

        missing = None if not args.no_tray else "--no-tray"
        missing = missing or tray_missing()
        if missing is None:
            desktop = Desktop(workdir / "desktop", env["DBUS_SESSION_BUS_ADDRESS"])
            (workdir / "desktop").mkdir()
            desktop.home = Path(env.get("HOME", str(desktop.home)))
            with common.quiet_stderr(workdir / "desktop.log"):
                stack.callback(desktop.stop)
                desktop.start()
            proc = start_tray_broker(home, env, desktop, log)
            try:
                time.sleep(args.settle)
                tray = measure({"broker (tray)": proc.pid}, args.seconds)["broker (tray)"]
            finally:
                common.stop_broker(proc)
            results[tray.name] = tray
            print(tray.line())
        else:
            print(f"  tray: not measured ({missing} missing)")
    return report(results, busy)


def report(results: dict[str, Cost], busy: Cost) -> int:
    brokers = [c for name, c in results.items() if name.startswith("broker")]
    servers = [c for name, c in results.items() if not name.startswith("broker")]
    met = all(
        c.cpu_per_minute <= CPU_TARGET and c.wakeups_per_second <= WAKEUP_TARGET for c in brokers
    ) and all(c.cpu_per_minute <= CPU_TARGET for c in servers)
    parts = [
        f"{c.name} {c.cpu_per_minute:.3f} CPU-s/min {c.wakeups_per_second:.1f}/s {c.rss:.0f} MB"
        for c in brokers
    ] + [f"{c.name} {c.cpu_per_minute:.3f} CPU-s/min" for c in servers]
    print(
        f"idle: {'; '.join(parts)}; 1 request/s: {busy.cpu * 1000:.2f} ms CPU per request "
        f"(targets <= {CPU_TARGET} CPU-s/min each, broker <= {WAKEUP_TARGET:.0f} wakeups/s: "
        f"{common.verdict(met)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
