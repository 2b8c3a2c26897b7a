"""``mcp-broker connect`` against a hostile MCP server (``hostile_server``): a real bridge process
between a real client and a real server on 127.0.0.1. Whatever the server does wrong — a 500
page, garbage, a stream or body cut short, an answer to another request — each request is
answered (an error within a bounded time, never silence), the next request works, notifications
get no answer, and a bridge that must stop says so and exits instead of hanging."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from broker.bridge.failures import BRIDGE_FAILED
from tests.broker.bridge.hostile_server import hostile_server
from tests.broker.bridge.stdio import connect_argv
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.integration

#: Seconds a test waits for one answer; an answer that never comes fails the test here.
WAIT = 30.0

FAILING = [
    "html_500",
    "garbage_json",
    "deep_json",
    "wrong_content_type",
    "bad_gzip",
    "cut_body",
    "no_response",
    "truncated_sse",
    "notification_only_sse",
    "wrong_id",
]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with hostile_server() as found:
        yield found


@pytest.fixture
def env(tmp_path: Path, url: str) -> dict[str, str]:
    """A broker home in which ``url`` is added and nobody is signed in: the bridge sends each
    request without a token, which the hostile server does not ask for."""
    env = {
        "PATH": "/usr/bin:/bin",
        "MCP_BROKER_HOME": str(tmp_path / "home"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "PYTHONPATH": str(ROOT),
    }
    added = subprocess.run(
        [sys.executable, "-m", "broker.cli", "add", url],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return env


def text_of(result: Any) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def test_an_sdk_client_gets_an_error_for_each_bad_answer_and_the_session_goes_on(
    url: str, env: dict[str, str], tmp_path: Path
) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=connect_argv(url), env=env, cwd=str(ROOT)
    )

    async def session() -> tuple[dict[str, str], list[str], str]:
        errors: dict[str, str] = {}
        after: list[str] = []
        with (tmp_path / "bridge.log").open("a") as log:
            async with Client(stdio_client(params, errlog=log), mode="legacy") as client:
                for tool in FAILING:
                    with anyio.fail_after(WAIT):
                        try:
                            await client.call_tool(tool, {})
                        except MCPError as exc:
                            errors[tool] = exc.error.message
                        after.append(text_of(await client.call_tool("ok", {})))
                with anyio.fail_after(WAIT):
                    twice = text_of(await client.call_tool("twice", {}))
        return errors, after, twice

    errors, after, twice = anyio.run(session)

    assert sorted(errors) == sorted(FAILING), errors
    assert all(message.strip() for message in errors.values())
    assert after == ["fine"] * len(FAILING)
    assert twice == "first"


class RawClient:
    """JSON-RPC over a bridge process's stdin/stdout, as a stdio MCP client speaks it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self._stdin: IO[str] = proc.stdin
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        stdout = proc.stdout

        def read() -> None:
            for line in stdout:
                self.lines.put(json.loads(line))
            self.lines.put(None)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def send(self, message: dict[str, Any] | list[dict[str, Any]]) -> None:
        self._stdin.write(json.dumps(message) + "\n")
        self._stdin.flush()

    def ask(self, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = self.lines.get(timeout=WAIT)
            assert message is not None, "the bridge ended its output"
            self.received.append(message)
            if message.get("id") == request_id and "method" not in message:
                return message

    def close_input(self) -> None:
        self._stdin.close()
        while (message := self.lines.get(timeout=WAIT)) is not None:
            self.received.append(message)

    def stderr_after_exit(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def bridge(argv: list[str], env: dict[str, str]) -> Iterator[RawClient]:
    proc = subprocess.Popen(
        [sys.executable, *argv],
        env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = RawClient(proc)
    try:
        yield client
    finally:
        client.stop()


HELLO = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "raw", "version": "0"},
}


def test_each_request_is_answered_exactly_once_and_notifications_never(
    url: str, env: dict[str, str]
) -> None:
    with bridge(connect_argv(url), env) as client:
        assert "result" in client.ask(1, "initialize", HELLO)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        client.send({"jsonrpc": "2.0", "method": "notifications/hostile"})  # answered 500
        answers = {}
        for number, tool in enumerate([*FAILING, "twice", "ok"], start=2):
            answers[tool] = client.ask(number, "tools/call", {"name": tool, "arguments": {}})
        client.close_input()
        code = client.proc.wait(timeout=WAIT)
        stderr = client.stderr_after_exit()
    ids = [m.get("id") for m in client.received if "method" not in m]
    expected = list(range(1, len(FAILING) + 4))

    assert code == 0, stderr
    assert all("error" in answers[tool] for tool in FAILING), answers
    assert "result" in answers["twice"] and "result" in answers["ok"]
    assert sorted(i for i in ids if i != 424242) == expected  # one answer each, no more
    assert ids.count(424242) == 1  # the hostile server's stray answer, relayed as it came
    assert all(m.get("method") != "notifications/hostile" for m in client.received)


def test_a_batch_gets_one_error_per_request_in_it_and_the_session_goes_on(
    url: str, env: dict[str, str]
) -> None:
    with bridge(connect_argv(url), env) as client:
        assert "result" in client.ask(1, "initialize", HELLO)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        client.send([
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ok"}},
            {"jsonrpc": "2.0", "method": "notifications/hostile"},
            {"jsonrpc": "2.0", "id": 3, "method": "ping"},
        ])  # fmt: skip
        after = client.ask(4, "tools/call", {"name": "ok", "arguments": {}})
        client.close_input()
        assert client.proc.wait(timeout=WAIT) == 0, client.stderr_after_exit()
    answers = {m["id"]: m for m in client.received if "method" not in m}

    assert sorted(answers) == [1, 2, 3, 4]  # one answer each, none for the notification
    for request_id in (2, 3):
        assert answers[request_id]["error"]["code"] == -32600
        assert "batches are not part of MCP" in answers[request_id]["error"]["message"]
    assert "result" in after


#: The bridge with a bug planted where no request is being handled (a line that reads
#: ``boom``): the relay itself fails.
PLANTED_BUG = textwrap.dedent(
    """
    import sys
    import broker.bridge.relay as relay

    decode = relay.decode

    def buggy(body):
        if b"boom" in body:
            raise RuntimeError("a planted bug, Bearer canary-token-123")
        return decode(body)

    relay.decode = buggy
    from broker.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_bridge_that_must_stop_answers_what_it_owes_and_exits_with_one_line(
    url: str, env: dict[str, str]
) -> None:
    argv = ["-c", PLANTED_BUG, *connect_argv(url)[2:]]  # connect_argv: -m broker.cli ... URL
    with bridge(argv, env) as client:
        assert "result" in client.ask(1, "initialize", HELLO)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow"}})
        client.send({"jsonrpc": "2.0", "method": "boom"})
        owed = client.lines.get(timeout=WAIT)
        # The client's input stays open: the bridge must not wait for it to end.
        code = client.proc.wait(timeout=WAIT)
        stderr = client.stderr_after_exit()
    last = stderr.strip().splitlines()[-1]

    assert owed is not None and owed["id"] == 2 and owed["error"]["code"] == BRIDGE_FAILED
    assert code == 1
    assert last.startswith("mcp-broker connect: the bridge stopped: RuntimeError: a planted bug")
    assert "Traceback" in stderr  # logged, for whoever reads the client's server log
    assert "canary-token-123" not in stderr
