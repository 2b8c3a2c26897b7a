"""The conformance harness's client, played through the real stdio bridge (``mcp-broker connect``).

The harness (``@modelcontextprotocol/conformance client``) runs this file with the MCP server URL
as its last argument, the scenario in ``MCP_CONFORMANCE_SCENARIO``, the protocol version in
``MCP_CONFORMANCE_PROTOCOL_VERSION`` and, for pre-registration, credentials in
``MCP_CONFORMANCE_CONTEXT``. The parts, and whose each is:

- **the bridge's** (``mcp-broker connect URL``, run as the installed console script in a
  subprocess): every protocol decision on the HTTP side. Discovery, scopes, registration, PKCE,
  the 401 and 403 answers, step-up, tokens, routing headers (``MCP-Protocol-Version``,
  ``Mcp-Method``, ``Mcp-Name``, ``Mcp-Param-*``), which tools may be offered, SSE resumption,
  relaying every message both ways unchanged. Sign-in happens in ``mcp-broker login URL``, the
  command the bridge's "sign in required" answer names; it is the broker's code, not this file's.
- **the user's** (this file): ``mcp-broker add URL`` (with the URL of the broker's Client ID
  Metadata Document the harness knows, with ``--client-id`` when the scenario
  hands over pre-registered credentials, the secret typed into the config file, which the broker
  reads), and, when the bridge answers a request with "sign in required" (-32010), running the
  ``mcp-broker login`` command the answer names and retrying — as a person reading the MCP
  client's error would; when the login says the server moved to another authorization server,
  running the ``mcp-broker add`` command it names to confirm, then the login again.
- **the user's browser** (``approver.py``, set as ``BROWSER``): loads the authorization URL and
  follows its redirect to the broker's loopback listener.
- **the local MCP client's** (this file): a plain stdio MCP client speaking JSON-RPC lines with
  the bridge (no SDK models, so what a scenario checks is exactly what passed through the
  bridge). Its own duties: the handshake (``initialize`` or, from 2026-07-28, the ``_meta``
  envelope on every request and ``server/discover``, retrying once at a version the server
  names), calling the tools a scenario asks for, answering the server's requests (elicitation
  with the schema's defaults applied, sampling, roots), and multi-round-trip requests (SEP-2322:
  fulfil ``inputRequests``, retry with a new id, ``inputResponses`` and the ``requestState``
  echoed verbatim).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("bridge-conformance-client")

HERE = Path(__file__).resolve().parent
APPROVER = HERE / "approver.py"
#: The Client ID Metadata Document URL the harness expects (its ``basic-cimd`` scenario).
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"
#: The bridge's JSON-RPC error code for "sign in, then retry" (broker.bridge.transport).
SIGN_IN_REQUIRED = -32010
#: JSON-RPC code of an unsupported protocol version (SEP-2575).
UNSUPPORTED_PROTOCOL_VERSION = -32022
MODERN_VERSIONS = ("2026-07-28",)
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO = {"name": "mcp-broker-conformance-client", "version": "1.0.0"}
CAPABILITIES: dict[str, Any] = {"elicitation": {}, "sampling": {}, "roots": {}}
#: How many times the user signs in for one request before giving up.
SIGN_IN_ATTEMPTS = 2
#: How many input rounds a multi-round-trip request may take.
INPUT_ROUNDS = 5

Json = dict[str, Any]


class RequestFailed(Exception):
    def __init__(self, error: Json) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


# -- the user -------------------------------------------------------------------------------


def broker_command() -> list[str]:
    """The installed ``mcp-broker`` console script of the interpreter running this file."""
    script = Path(sys.executable).with_name("mcp-broker")
    return [str(script)] if script.exists() else [sys.executable, "-m", "broker.cli"]


class User:
    """The person at the terminal: configures the server, signs in when told to."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.env = {
            **os.environ,
            "MCP_BROKER_HOME": str(home),
            "BROWSER": _browser_wrapper(home),
        }
        self.env.pop("MCP_BROKER_CONFIG", None)
        self.home = home

    def broker(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*broker_command(), *args],
            env=self.env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        sys.stderr.write(done.stderr)
        logger.info("mcp-broker %s exited %d", " ".join(args), done.returncode)
        return done

    def add_server(self, context: Json) -> None:
        scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
        if scenario.startswith("auth/client-credentials"):
            self.add_machine(context)
            return
        if scenario == "auth/enterprise-managed-authorization":
            self.add_enterprise(context)
            return
        if scenario == "auth/wif-jwt-bearer":
            self.add_workload(context)
            return
        # The user's broker has a Client ID Metadata Document, at the URL the harness knows.
        args = ["add", self.url, "--client-metadata-url", CLIENT_METADATA_URL]
        if context.get("client_id"):
            args += ["--client-id", context["client_id"]]
        if self.broker(*args).returncode != 0:
            raise SystemExit("mcp-broker add failed")
        if context.get("client_secret"):
            # No command takes a secret yet: typed into the config file, which the broker reads.
            self._type_secret(context["client_secret"])

    def add_machine(self, context: Json) -> None:
        """A machine identity, as its operator adds it: the secret on standard input, or the
        private key from a file only they can read (the broker copies it into the keyring)."""
        args = ["add", self.url, "--client-id", context["client_id"]]
        if context.get("private_key_pem"):
            keyfile = self.home / "client-key.pem"
            keyfile.touch(mode=0o600)
            keyfile.write_text(context["private_key_pem"])
            done = self.broker(*args, "--private-key-jwt", str(keyfile))
        else:
            done = self.broker(*args, "--client-credentials", stdin=context["client_secret"] + "\n")
        if done.returncode != 0:
            raise SystemExit("mcp-broker add (machine identity) failed")

    def add_enterprise(self, context: Json) -> None:
        """Enterprise-managed authorization, as the user sets it up: the organisation's IdP
        (here its ID token comes from a file, as an SSO agent would keep it: the harness's IdP
        has no sign-in page), then the server with the client it has at its authorization
        server, the secret on standard input."""
        id_token = self._private_file("id-token", context["idp_id_token"])
        idp = ["idp", "add", "corp", "--issuer", context["idp_issuer"]]
        idp += ["--client-id", context["idp_client_id"], "--id-token-file", str(id_token)]
        if self.broker(*idp).returncode != 0:
            raise SystemExit("mcp-broker idp add failed")
        args = ["add", self.url, "--enterprise", "corp", "--client-id", context["client_id"]]
        if self.broker(*args, stdin=context["client_secret"] + "\n").returncode != 0:
            raise SystemExit("mcp-broker add --enterprise failed")

    def add_workload(self, context: Json) -> None:
        """Workload identity federation: the JWT the environment provides, in a file."""
        jwt = self._private_file("workload.jwt", context["valid_jwt"])
        args = ["add", self.url, "--workload-token-file", str(jwt)]
        if self.broker(*args, "--client-id", context["client_id"]).returncode != 0:
            raise SystemExit("mcp-broker add --workload-token-file failed")

    def _private_file(self, name: str, text: str) -> Path:
        path = self.home / name
        path.touch(mode=0o600)
        path.write_text(text)
        return path

    def sign_in(self, message: str) -> bool:
        """Do what the bridge's answer says: run the ``mcp-broker login`` command it names."""
        logger.info("the bridge says: %s", message)
        login = named_command(message, "login") or ["login", self.url]
        done = self.broker(*login)
        add = named_command(done.stderr, "add")
        if done.returncode != 0 and add:
            # The server moved to another authorization server; the broker asks the user to
            # confirm it by adding the server again, then to sign in.
            self.broker(*add)
            done = self.broker(*login)
        return done.returncode == 0

    def _type_secret(self, secret: str) -> None:
        config = self.home / "config.toml"
        text = config.read_text()
        url_line = re.compile(rf"^url = {re.escape(json.dumps(self.url))}$", re.MULTILINE)
        text, found = url_line.subn(
            lambda m: f"{m.group(0)}\nclient_secret = {json.dumps(secret)}", text
        )
        if found != 1:
            raise SystemExit(f"the server's entry was not found in {config}")
        config.write_text(text)


def named_command(message: str, command: str) -> list[str] | None:
    """The arguments of the first ``mcp-broker COMMAND ...`` the message names in backticks,
    as a person would copy it."""
    for named in re.findall(rf"`(mcp-broker {command}\b[^`]*)`", message):
        return shlex.split(named)[1:]
    return None


def _browser_wrapper(home: Path) -> str:
    """``BROWSER`` names one executable (webbrowser does not split it): a tiny wrapper."""
    wrapper = home / "browser"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{APPROVER}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


# -- the bridge, as the local client sees it ------------------------------------------------


class Bridge:
    """``mcp-broker connect URL`` as a subprocess, spoken to in JSON-RPC lines."""

    def __init__(self, url: str, env: dict[str, str], answer: Callable[[Json], Json]) -> None:
        self._answer = answer
        self._next_id = 0
        self.proc = subprocess.Popen(
            [*broker_command(), "connect", url],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def request(self, method: str, params: Json) -> Json:
        """Send a request and return its response, answering the server's requests meanwhile."""
        self._next_id += 1
        request_id = self._next_id
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = self._receive()
            if "method" in message and "id" in message:
                self._send({"jsonrpc": "2.0", "id": message["id"], **self._answer(message)})
            elif "method" in message:
                logger.info("notification %s", message["method"])
            elif message.get("id") == request_id:
                return message
            else:
                logger.warning("an answer to no request of ours: %s", message.get("id"))

    def notify(self, method: str, params: Json | None = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def _send(self, message: Json) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()

    def _receive(self) -> Json:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the bridge closed its output (exit {self.proc.wait()})")
        message: Json = json.loads(line)
        return message


# -- the local MCP client -------------------------------------------------------------------


class LocalClient:
    def __init__(self, url: str, version: str, user: User) -> None:
        self.version = version
        self.modern = version in MODERN_VERSIONS
        self.user = user
        self.bridge = Bridge(url, user.env, self.answer)

    def connect(self) -> None:
        if not self.modern:
            hello = {"protocolVersion": self.version, "capabilities": CAPABILITIES}
            self.call("initialize", {**hello, "clientInfo": CLIENT_INFO})
            self.bridge.notify("notifications/initialized")
            return
        try:
            self.call("server/discover", {})
        except RequestFailed as exc:
            supported = (exc.error.get("data") or {}).get("supported") or []
            mutual = [v for v in MODERN_VERSIONS if v in supported]
            if exc.error.get("code") != UNSUPPORTED_PROTOCOL_VERSION or not mutual:
                raise
            self.version = mutual[-1]
            self.call("server/discover", {})

    def call(self, method: str, params: Json) -> Json:
        """A request as an MCP client makes it: signs in when told, completes input rounds."""
        sign_ins = 0
        for _ in range(INPUT_ROUNDS):
            answer = self.bridge.request(method, self._envelope(params))
            error = answer.get("error")
            if error is not None:
                if error.get("code") == SIGN_IN_REQUIRED and sign_ins < SIGN_IN_ATTEMPTS:
                    sign_ins += 1
                    if self.user.sign_in(str(error.get("message"))):
                        continue
                raise RequestFailed(error)
            result: Json = answer["result"]
            if result.get("resultType") != "input_required":
                return result
            params = self._with_input(params, result)
        raise RuntimeError(f"{method} still asks for input after {INPUT_ROUNDS} rounds")

    def answer(self, request: Json) -> Json:
        """The client's answer to a request from the server."""
        method, params = request["method"], request.get("params") or {}
        if method == "elicitation/create":
            return {"result": accept_with_defaults(params)}
        if method == "sampling/createMessage":
            return {
                "result": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "ok"},
                    "model": "conformance-client",
                    "stopReason": "endTurn",
                }
            }
        if method == "roots/list":
            return {"result": {"roots": []}}
        if method == "ping":
            return {"result": {}}
        return {"error": {"code": -32601, "message": f"method not found: {method}"}}

    def close(self) -> int:
        return self.bridge.close()

    def _envelope(self, params: Json) -> Json:
        if not self.modern:
            return params
        meta = {
            **params.get("_meta", {}),
            META_VERSION: self.version,
            META_CLIENT_INFO: CLIENT_INFO,
            META_CAPABILITIES: CAPABILITIES,
        }
        return {**params, "_meta": meta}

    def _with_input(self, params: Json, result: Json) -> Json:
        """The retry of a multi-round-trip request (SEP-2322): this round's answers, and the
        server's ``requestState`` echoed exactly when it sent one."""
        requests = result.get("inputRequests") or {}
        responses = {key: self.answer(asked).get("result") for key, asked in requests.items()}
        retry = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
        retry["inputResponses"] = responses
        if "requestState" in result:
            retry["requestState"] = result["requestState"]
        return retry


def accept_with_defaults(params: Json) -> Json:
    """Accept a form elicitation with every default the requested schema declares (SEP-1034)."""
    schema = params.get("requestedSchema") or {}
    properties = schema.get("properties") or {}
    content = {
        name: spec["default"]
        for name, spec in properties.items()
        if isinstance(spec, dict) and "default" in spec
    }
    return {"action": "accept", "content": content}


def placeholder_arguments(schema: Json) -> Json:
    """Arguments a client fills in for a tool: one plain value per typed property."""
    values = {"string": "x", "integer": 1, "number": 1, "boolean": True, "object": {}, "array": []}
    arguments: Json = {}
    for name, spec in (schema.get("properties") or {}).items():
        if isinstance(spec, dict) and spec.get("type") in values:
            arguments[name] = values[spec["type"]]
    return arguments


# -- what each scenario asks of the client ----------------------------------------------------


def tool_calls(scenario: str, tools: list[Json], context: Json) -> list[tuple[str, Json]]:
    """The tool calls a scenario asks for, in order."""
    if context.get("toolCalls"):
        return [(call["name"], call.get("arguments") or {}) for call in context["toolCalls"]]
    if scenario.startswith("auth/"):
        return [(tools[0]["name"], {})] if tools else []
    if scenario == "json-schema-2020-12-preservation":
        # Hand the focal tool's inputSchema back, exactly as the client received it.
        by_name = {tool["name"]: tool for tool in tools}
        focal = by_name["json_schema_2020_12_tool"]["inputSchema"]
        return [("json_schema_echo", {"schema": focal})]
    return [(tool["name"], placeholder_arguments(tool.get("inputSchema") or {})) for tool in tools]


def run_scenario(client: LocalClient, scenario: str, context: Json) -> None:
    client.connect()
    tools: list[Json] = client.call("tools/list", {}).get("tools") or []
    logger.info("listed %d tools: %s", len(tools), [tool.get("name") for tool in tools])
    for name, arguments in tool_calls(scenario, tools, context):
        try:
            client.call("tools/call", {"name": name, "arguments": arguments})
            logger.info("called %s", name)
        except RequestFailed as exc:
            logger.info("%s failed: %s", name, exc)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    url = argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION", "2025-11-25")
    context: Json = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    logger.info("scenario %s at %s", scenario, version)
    with tempfile.TemporaryDirectory(prefix="bridge-client-") as home:
        user = User(url, Path(home))
        user.add_server(context)
        client = LocalClient(url, version, user)
        try:
            run_scenario(client, scenario, context)
        except RequestFailed as exc:
            print(f"the bridge refused: {exc}", file=sys.stderr)
            return 1
        finally:
            code = client.close()
            logger.info("the bridge exited %d", code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
