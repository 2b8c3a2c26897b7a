from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from broker.api.clients import ConsentRequest
from broker.api.server import ApiServer, ApiSettings, start_api
from broker.paths import BrokerPaths, broker_paths
from tests.broker.api.fakes import FakeProvider

API_THREAD_PREFIXES = ("waitress-", "mcp-broker-api")


def api_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(API_THREAD_PREFIXES)]


@dataclass
class Api:
    server: ApiServer
    provider: FakeProvider
    paths: BrokerPaths
    http: httpx2.Client
    consent_asked: list[ConsentRequest]
    sign_in_asked: list[tuple[str, ...]]

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def secret(self) -> str:
        return self.server.clients.default_secret

    def headers(self, secret: str | None = None) -> dict[str, str]:
        return {"X-MCP-Broker": "1", "Authorization": f"Bearer {secret or self.secret}"}

    def token(self, body: object, secret: str | None = None) -> httpx2.Response:
        return self.http.post("/v1/token", json=body, headers=self.headers(secret))


@pytest.fixture(autouse=True)
def no_api_threads_left() -> Iterator[None]:
    yield
    assert api_threads() == [], "a test left API threads behind"


@pytest.fixture
def paths(tmp_path: Path) -> BrokerPaths:
    return broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")}).ensure_private_dirs()


@pytest.fixture
def api_settings() -> ApiSettings:
    return ApiSettings(threads=4, call_timeout=5.0)


@pytest.fixture
def api(paths: BrokerPaths, api_settings: ApiSettings) -> Iterator[Api]:
    provider = FakeProvider()
    consent: list[ConsentRequest] = []
    sign_in: list[tuple[str, ...]] = []
    server = start_api(
        provider,
        paths,
        settings=api_settings,
        consent_prompt=consent.append,
        on_interaction_required=lambda resource, client, scope: sign_in.append(
            (resource, client) if scope is None else (resource, client, scope)
        ),
    )
    http = httpx2.Client(base_url=server.url, trust_env=False, timeout=15.0)
    try:
        yield Api(server, provider, paths, http, consent, sign_in)
    finally:
        http.close()
        if provider.gate is not None:
            provider.gate.set()
        server.close()
    assert api_threads() == [], "the API left threads behind"
