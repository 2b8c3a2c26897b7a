"""What the demo-stack benchmarks share (not a benchmark itself: ``make bench`` skips ``_*.py``).

Everything runs on 127.0.0.1 on this machine, with real parts: the local authorization server
(auto-login as ``demo``, a counter of token requests by grant type) and the demo MCP server from
``tests/e2e/conftest.py``, a private Secret Service from ``tests/support/secret_service.py``
(so no benchmark touches the user's keyring), and ``mcp-broker run --headless`` as a child
process with its own ``MCP_BROKER_HOME``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test-support modules live in tests/

import httpx2  # noqa: E402

from broker.api.endpoint import Endpoint, read_endpoint  # noqa: E402
from broker.cli.demo import CLIENT_ID  # noqa: E402
from broker.cli.demo_smoke import follow_to_callback  # noqa: E402
from broker.config import ServerConfig  # noqa: E402
from broker.paths import BrokerPaths, broker_paths  # noqa: E402
from broker.root import build  # noqa: E402
from tests.e2e.conftest import DemoStack, demo_stack  # noqa: E402
from tests.support.secret_service import SecretServiceDaemons  # noqa: E402

__all__ = ["DemoStack", "demo_stack"]

# Library INFO lines (every HTTP request) would bury the figures; warnings still show.
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

# Extra `mcp-broker` options for the brokers the benchmarks start (e.g. -vv to see what they do).
BROKER_FLAGS: list[str] = os.environ.get("BENCH_BROKER_FLAGS", "").split()
KEYRING_BACKEND = "keyring.backends.SecretService.Keyring"


@contextmanager
def private_keyring(workdir: Path) -> Iterator[dict[str, str]]:
    """A private, unlocked Secret Service for this process and its children; yields their env."""
    root = workdir / "secret-service"
    root.mkdir(exist_ok=True)
    daemons = SecretServiceDaemons(root)
    with quiet_stderr(root / "daemons.log"):  # the daemons' chatter, not the figures
        daemons.start()
    try:
        env = {**daemons.environ(), "PYTHON_KEYRING_BACKEND": KEYRING_BACKEND}
        for name in ("DBUS_SESSION_BUS_ADDRESS", "NO_AT_BRIDGE", "PYTHON_KEYRING_BACKEND"):
            os.environ[name] = env[name]
        yield env
    finally:
        daemons.stop()


@contextmanager
def quiet_stderr(log: Path) -> Iterator[None]:
    """Processes spawned inside the block write their stderr to ``log``."""
    saved = os.dup(2)
    with log.open("ab") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def sign_in(home: Path, mcp_url: str, **broker_options: Any) -> BrokerPaths:
    """Add the demo server to a broker home and sign in (auto-login, no browser)."""
    paths = broker_paths({"MCP_BROKER_HOME": str(home)})
    broker = build(paths, paths.config_file, opener=follow_to_callback, **broker_options).broker
    try:
        broker.add(ServerConfig(mcp_url, client_id=CLIENT_ID, provider="cognito"))
        broker.login(mcp_url)
    finally:
        broker.close()
    return paths


def start_broker(home: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``mcp-broker run --headless`` with ``home`` as its ``MCP_BROKER_HOME``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "broker.cli", *BROKER_FLAGS, "run", "--headless"],
            env={**env, "MCP_BROKER_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_broker(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait(5)


def wait_for_endpoint(paths: BrokerPaths, proc: subprocess.Popen[bytes]) -> Endpoint:
    """The child's endpoint.json, once it names the child (polls every 10 ms, 30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the broker exited with {proc.returncode}")
        try:
            endpoint = read_endpoint(paths.endpoint_file)
            if endpoint.pid == proc.pid:
                return endpoint
        except Exception:  # not written yet, or mid-write
            pass
        time.sleep(0.01)
    raise RuntimeError("the broker did not publish its endpoint within 30 s")


def ask_token(
    http: httpx2.Client, endpoint: Endpoint, resource: str, min_valid: float | None = None
) -> httpx2.Response:
    """``POST /v1/token`` as the default client (DESIGN §3)."""
    body: dict[str, Any] = {"resource": resource}
    if min_valid is not None:
        body["min_valid_seconds"] = min_valid
    return http.post(
        f"{endpoint.url}/v1/token",
        json=body,
        headers={"X-MCP-Broker": "1", "Authorization": f"Bearer {endpoint.secret}"},
    )


def claims(jwt: str) -> dict[str, Any]:
    """A JWT's payload, unverified: the benchmark only reads what it was handed."""
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


if __name__ == "__main__":
    print("benchmarks/_common.py is a helper module, not a benchmark.")


@dataclass
class Result:
    """One load run's outcome: what the benchmarks compare, side by side."""

    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_seconds: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / max(1, self.requests) * 1e6


def parse_wrk(name: str, out: str) -> Result:
    """A ``wrk --latency`` run's totals, p50/p99 and errors (non-2xx and socket errors)."""
    total = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    if total is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    unit = {"ms": 0.001, "s": 1.0, "m": 60.0}[total.group(3)]
    pcts = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if sockets:
        errors += sum(int(g) for g in sockets.groups())
    seconds = float(total.group(2)) * unit
    return Result(name, int(total.group(1)), seconds, to_ms(pcts["50"]), to_ms(pcts["99"]), errors)


def to_ms(text: str) -> float:
    found = re.match(r"([\d.]+)(\w+)", text)
    assert found is not None
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
