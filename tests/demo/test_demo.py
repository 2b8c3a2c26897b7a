"""``mcp-broker demo`` and ``mcp-broker demo --smoke`` as a user runs them: real subprocesses, a
real (private) Secret Service, the demo servers in the demo process, the broker's token API."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.api.endpoint import request_token
from broker.paths import broker_paths
from broker.store.keyring_store import SERVICE
from tests.broker.desktop.brokerrun import session_processes
from tests.e2e.conftest import BrokerCli
from tests.e2e.test_cli_e2e import claims
from tests.support.procs import fixed_port
from tests.support.secret_service import SecretServiceDaemons

pytestmark = pytest.mark.integration

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.")


def without_keyring(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The same environment on a machine with no Secret Service (and no keyringrc)."""
    bare = {k: v for k, v in env.items() if k not in {"PYTHON_KEYRING_BACKEND"}}
    bare["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path}/no-bus"
    bare["HOME"] = bare["XDG_CONFIG_HOME"] = str(tmp_path / "keyringless")
    return bare


def test_help_describes_the_demo_and_the_smoke_check(broker_cli: BrokerCli) -> None:
    done = broker_cli.run("demo", "--help")

    assert done.returncode == 0, done.stderr
    assert "--smoke" in done.stdout and "Ctrl-C" in done.stdout
    assert "http://127.0.0.1:8000/mcp" in done.stdout


def test_ephemeral_without_smoke_is_a_usage_error(broker_cli: BrokerCli) -> None:
    done = broker_cli.run("demo", "--ephemeral")

    assert done.returncode == 2
    assert "--ephemeral only goes with --smoke" in done.stderr


def test_smoke_signs_in_gets_a_broker_token_and_whoami_names_demo(
    broker_cli: BrokerCli, secret_service_daemons: SecretServiceDaemons
) -> None:
    before = secret_service_daemons.entries(SERVICE)
    del broker_cli.env["MCP_BROKER_HOME"]  # the check makes a throw-away home of its own

    done = broker_cli.run("demo", "--smoke")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "get a token from the broker's token API" in done.stdout
    (whoami,) = [ln for ln in done.stdout.splitlines() if ln.startswith("whoami: ")]
    identity = json.loads(whoami.removeprefix("whoami: "))
    assert identity["username"] == "demo" and identity["client_id"] == "demo-broker"
    assert re.search(r"smoke check passed in [\d.]+ s", done.stdout)
    assert not JWT.search(done.stdout + done.stderr)  # no token printed or logged
    # Signed out at the end: the check leaves nothing of its own in the keyring.
    assert secret_service_daemons.entries(SERVICE).items() <= before.items()


def test_smoke_with_a_refused_keyring_setting_says_so_and_fails(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    """A keyring the user configured (here keyring's null backend) is refused, never replaced
    by the demo's temporary one (that is only for machines with no keyring at all)."""
    broker_cli.env = without_keyring(broker_cli.env, tmp_path)
    broker_cli.env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"

    done = broker_cli.run("demo", "--smoke")

    assert done.returncode != 0
    assert "null backend" in done.stderr and "--ephemeral" in done.stderr
    assert "never falls back to storing tokens in a plain file" in done.stderr
    assert "temporary" not in done.stdout + done.stderr
    assert "start the demo servers" not in done.stdout  # nothing started


def test_smoke_ephemeral_works_without_a_keyring(broker_cli: BrokerCli, tmp_path: Path) -> None:
    broker_cli.env = without_keyring(broker_cli.env, tmp_path)

    done = broker_cli.run("demo", "--smoke", "--ephemeral")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "from the broker library (in memory)" in done.stdout
    assert '"username": "demo"' in done.stdout


def test_a_busy_port_is_named_with_the_options_that_change_it(broker_cli: BrokerCli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = broker_cli.run("demo", "--headless", "--port", port, "--idp-port", str(fixed_port()))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "could not start the demo servers" in done.stderr and "--port" in done.stderr
    assert "Signing in" not in done.stdout


class DemoProcess:
    """``mcp-broker demo`` running in its own session; its stdout read line by line."""

    def __init__(self, cli: BrokerCli, *args: str, stderr: Path) -> None:
        with stderr.open("w") as err:  # the child has its own copy
            self.proc = subprocess.Popen(
                cli.argv("demo", *args),
                env=cli.env,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
        self.stderr_path = stderr
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {pattern!r} within {timeout}s:\n{self.output()}")
            if line is None:
                pytest.fail(f"demo exited before {pattern!r}:\n{self.output()}")
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def output(self) -> str:
        return "\n".join(self.lines) + "\n--- stderr ---\n" + self.stderr_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in session_processes(self.proc.pid):
            os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=10)  # EOF once the session is gone
        if not self._reader.is_alive():
            assert self.proc.stdout is not None
            self.proc.stdout.close()


def start_demo(cli: BrokerCli, stderr: Path) -> tuple[DemoProcess, str]:
    port, idp_port = fixed_port(), fixed_port()  # the command's own --port options
    args = ("--headless", "--port", str(port), "--idp-port", str(idp_port), "--auto-login", "demo")
    return DemoProcess(cli, *args, stderr=stderr), f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def demo(broker_cli: BrokerCli, tmp_path: Path) -> Iterator[tuple[DemoProcess, str]]:
    process, url = start_demo(broker_cli, tmp_path / "demo.stderr")
    try:
        yield process, url
    finally:
        process.close()


def test_demo_signs_in_serves_tokens_and_stops_cleanly_on_ctrl_c(
    demo: tuple[DemoProcess, str], broker_cli: BrokerCli
) -> None:
    process, url = demo
    process.wait_for(r"^Signed in to ")
    shown = "\n".join(process.lines)
    assert f"mcp-broker call {url} whoami" in shown
    assert f"mcp-broker configure claude-desktop --server {url}" in shown

    token = broker_cli.ok("token", url).strip()
    call = broker_cli.ok("call", url, "whoami")
    home = broker_paths({"MCP_BROKER_HOME": broker_cli.env["MCP_BROKER_HOME"]})
    served = request_token(url, paths=home)  # the demo's own broker serves its token API

    assert claims(token)["username"] == "demo" and claims(served.access_token)["username"] == "demo"
    assert '"username": "demo"' in call
    process.proc.send_signal(signal.SIGINT)
    assert process.proc.wait(30) == 0, process.output()
    assert session_processes(process.proc.pid) == []
    assert not home.endpoint_file.exists()  # the broker took its endpoint down
    assert not JWT.search(process.output())


def test_a_second_demo_says_a_broker_runs_and_that_broker_serves_its_server(
    demo: tuple[DemoProcess, str], broker_cli: BrokerCli, tmp_path: Path
) -> None:
    first, _ = demo
    first.wait_for(r"^Signed in to ")
    second, url = start_demo(broker_cli, tmp_path / "second.stderr")
    try:
        second.wait_for(r"^Not starting a broker: another mcp-broker is already running")
        second.wait_for(r"^Signed in to ")
        home = broker_paths({"MCP_BROKER_HOME": broker_cli.env["MCP_BROKER_HOME"]})
        served = request_token(url, paths=home)  # by the first demo's broker

        token = claims(served.access_token)
        assert token["username"] == "demo" and f"{url}/tools" in token["scope"].split()
        second.proc.send_signal(signal.SIGINT)
        assert second.proc.wait(30) == 0, second.output()
        assert first.proc.poll() is None  # the running broker is not the second demo's to stop
    finally:
        second.close()
