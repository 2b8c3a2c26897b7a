"""A running broker listener with the control page mounted, on 127.0.0.1 (port 0): the real
composition root, token API, controller and page, with an in-memory store holding canary
tokens for one signed-in server, so every test can check that nothing leaked."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx2
import pytest

from broker.api.server import ApiServer
from broker.config import ServerConfig
from broker.desktop.controller import Controller
from broker.paths import BrokerPaths, broker_paths
from broker.root import Root, build
from broker.store.memory import MemoryTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet
from broker.ui.backend import LiveBackend
from broker.ui.mount import ControlPage

SERVER = "https://mcp.example/mcp"
ISSUER = "https://idp.example/pool"
CLIENT_ID = "broker-client"
CANARY_ACCESS = "canary-access-4d1f9e77"
CANARY_REFRESH = "canary-refresh-b2c81a05"
CANARY_CLIENT_SECRET = "canary-client-secret-7e3a"
USER = "alice@example.com"


class Notes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def notify(self, summary: str, body: str) -> None:
        self.seen.append((summary, body))


@dataclass
class Page:
    root: Root
    api: ApiServer
    page: ControlPage
    controller: Controller
    paths: BrokerPaths
    http: httpx2.Client
    opened: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.api.port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cookie_name(self) -> str:
        return f"mcpb_ui_{self.port}"

    @property
    def api_secret(self) -> str:
        return self.api.clients.default_secret

    def canaries(self) -> list[str]:
        return [CANARY_ACCESS, CANARY_REFRESH, CANARY_CLIENT_SECRET, self.api_secret]

    def launch_file(self, secret: str | None = None) -> httpx2.Response:
        """``POST /v1/ui/launch`` as ``mcp-broker open`` sends it."""
        return self.http.post(
            "/v1/ui/launch",
            json={},
            headers={"X-MCP-Broker": "1", "Authorization": f"Bearer {secret or self.api_secret}"},
        )

    def launch_link(self) -> str:
        answer = self.launch_file()
        assert answer.status_code == 200, answer.text
        path = Path(unquote(urlsplit(answer.json()["file"]).path))
        (link,) = re.findall(r'href="([^"]+)"', path.read_text())
        return link.replace("&amp;", "&")

    def session(self) -> tuple[str, str, str]:
        """A fresh session: its cookie value, the CSRF token its pages carry and the path its
        pages are under (``/ui/s/KEY``)."""
        link = self.launch_link()
        answer = self.http.get(link)
        assert answer.status_code == 200, answer.text
        cookie = answer.cookies[self.cookie_name]
        self.http.cookies.clear()  # each request names its cookie, or has none
        (landing,) = re.findall(r'url=(/ui/s/[^/"]+)/servers"', answer.text)
        page = self.get(f"{landing}/clients", cookie)
        (csrf,) = set(re.findall(r'name="csrf" value="([^"]+)"', page.text))
        return cookie, csrf, landing

    def get(self, path: str, cookie: str | None, **headers: str) -> httpx2.Response:
        cookies = {self.cookie_name: cookie} if cookie else {}
        self.http.cookies.clear()
        return self.http.get(path, headers={**headers, "Cookie": _cookie_header(cookies)})

    def post(
        self, path: str, cookie: str | None, form: dict[str, str], **headers: str
    ) -> httpx2.Response:
        cookies = {self.cookie_name: cookie} if cookie else {}
        self.http.cookies.clear()
        headers = {"Origin": self.origin, **headers, "Cookie": _cookie_header(cookies)}
        return self.http.post(path, data=form, headers={k: v for k, v in headers.items() if v})


def _cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def signed_in(root: Root) -> None:
    root.broker.add(ServerConfig(SERVER, client_id=CLIENT_ID, issuer=ISSUER))
    now = time.time()
    root.broker.store.put(
        TokenSet(
            TokenKey(ISSUER, CLIENT_ID, SERVER),
            access_token=CANARY_ACCESS,
            expires_at=now + 3600,
            scope="openid mcp/read",
            refresh_token=CANARY_REFRESH,
            obtained_at=now,
            user=USER,
        )
    )
    root.broker.store.put_client_secret(ISSUER, CLIENT_ID, CANARY_CLIENT_SECRET)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")}).ensure_private_dirs()
    root = build(paths, paths.config_file, store=MemoryTokenStore())
    signed_in(root)
    opened: list[str] = []
    controller = Controller(
        root.broker, Notes(), open_url=opened.append, open_folder=lambda path: None
    )
    control = ControlPage(
        lambda clients: LiveBackend(root.broker, controller, clients),
        paths.state_dir,
        opener=opened.append,
    )
    controller.start()
    api = root.start_api(mount=control.mount)
    http = httpx2.Client(base_url=api.url, trust_env=False, timeout=15.0)
    try:
        yield Page(root, api, control, controller, paths, http, opened)
    finally:
        http.close()
        controller.stop()
        control.close()
        root.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("waitress-")]
